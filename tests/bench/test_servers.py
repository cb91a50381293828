"""The harness drives a real llmd: private store, config, readiness, streamed token counts."""

from __future__ import annotations

import asyncio
from pathlib import Path

import compare
import loadgen
import httpx
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


def test_socket_activated_llmd_starts_on_the_first_connection_and_streams_a_token(
    gguf_path: Path, tmp_path: Path
) -> None:
    llmd = servers.Llmd(servers.Settings(gguf_path, threads=1, parallel=1, ctx=512), tmp_path)
    try:
        listener = llmd.socket_activated()
        assert listener.poll() is None
        stream = asyncio.run(compare.first_token(llmd))
    finally:
        llmd.stop()
    assert stream.chunk_times
    assert 0 < stream.tokens <= 8


def test_servers_sharing_a_workdir_each_run_with_the_context_they_are_given(
    gguf_path: Path, tmp_path: Path
) -> None:
    # the conversation rows reuse the fresh-prompt rows' store with a larger context per slot
    for ctx in (512, 1024):
        llmd = servers.Llmd(servers.Settings(gguf_path, threads=1, parallel=1, ctx=ctx), tmp_path)
        try:
            llmd.start()
            asyncio.run(loadgen.run_clients(llmd.url, llmd.model, 1, 1, 1))
            [running] = httpx.get(f"{llmd.url}/api/ps").json()["models"]
        finally:
            llmd.stop()
        assert running["context_length"] == ctx
