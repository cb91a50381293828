"""The harness drives a real llmd: private store, config, readiness, streamed token counts."""

from __future__ import annotations

import asyncio
from pathlib import Path

import loadgen
import pytest
import servers

pytestmark = pytest.mark.model


def test_llmd_serves_the_benchmark_chat_and_the_load_generator_counts_its_tokens(
    gguf_path: Path, tmp_path: Path
) -> None:
    llmd = servers.Llmd(servers.Settings(gguf_path, threads=1, parallel=2, ctx=512), tmp_path)
    try:
        llmd.start()
        assert servers.rss_kib(llmd.pid) > 0
        run = asyncio.run(loadgen.run_clients(llmd.url, llmd.model, 2, 1, 6))
    finally:
        llmd.stop()
    assert run.clients == 2
    assert [s.tokens for s in run.streams] == [6, 6]
    assert all(s.chunk_times and s.text for s in run.streams)
    assert run.tokens == 12
