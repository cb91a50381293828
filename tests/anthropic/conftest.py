"""One live llmd for the Anthropic-compatibility tests, holding smollm2:135m and a tools variant."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anthropic
import pytest
from harness import LiveServer, create_smollm2, live_server
from inference.conftest import TOOLS_TEMPLATE

MODEL = "smollm2:135m"
TOOLS_MODEL = "smollm2-tools:135m"


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, gguf_path: Path) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("anthropic-server")) as live:
        create_smollm2(live.url, gguf_path, MODEL)
        create_smollm2(live.url, gguf_path, TOOLS_MODEL, template=TOOLS_TEMPLATE)
        yield live


@pytest.fixture(scope="session")
def client(server: LiveServer) -> Iterator[anthropic.Anthropic]:
    # the key is sent as x-api-key, which llmd does not check on loopback
    with anthropic.Anthropic(base_url=server.url, api_key="unused", timeout=300, max_retries=0) as c:
        yield c
