"""One live llmd for the API tests, with smollm2:135m created from the real GGUF."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from harness import LiveServer, create_smollm2, live_server

MODEL = "smollm2:135m"


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, gguf_path: Path) -> Iterator[LiveServer]:
    """A running llmd holding smollm2:135m; tests that change the store use their own names."""
    with live_server(tmp_path_factory.mktemp("api-server")) as live:
        create_smollm2(live.url, gguf_path, MODEL)
        yield live
