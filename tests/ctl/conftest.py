"""A live llmd for the llmctl tests."""

from __future__ import annotations

from typing import Iterator

import pytest

from harness import LiveServer, live_server


@pytest.fixture(scope="session")
def ctl_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("ctl-server")) as live:
        yield live
