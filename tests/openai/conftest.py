"""One live llmd for the OpenAI-compatibility tests, holding smollm2:135m."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from harness import LiveServer, create_smollm2, live_server

MODEL = "smollm2:135m"


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, gguf_path: Path) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("openai-server")) as live:
        create_smollm2(live.url, gguf_path, MODEL)
        yield live


@pytest.fixture(scope="session")
def client(server: LiveServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", timeout=300, max_retries=0) as c:
        yield c
