"""One live llmd for the fuzz suite, holding smollm2:135m (environment: server_env.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fuzz.server_env import MODEL, fuzz_env
from harness import LiveServer, create_smollm2, live_server


@pytest.fixture(scope="session")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory, gguf_path: Path) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("fuzz-server"), env=fuzz_env()) as live:
        create_smollm2(live.url, gguf_path, MODEL)
        yield live
