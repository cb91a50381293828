"""Issue 15's "What was seen", reproduced over HTTP: each held fixed from here on.

These were strict xfails until the fixes landed (each then XPASSed and failed the run, which is
how the fix was shown to make them pass).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fuzz.server_env import MODEL, fuzz_env
from harness import LiveServer, create_smollm2, live_server

@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, gguf_path: Path) -> Iterator[LiveServer]:
    """Its own daemon: these faults log tracebacks, which the fuzz daemon must never do."""
    with live_server(tmp_path_factory.mktemp("findings-server"), env=fuzz_env()) as live:
        create_smollm2(live.url, gguf_path, MODEL)
        yield live


@pytest.mark.model
def test_a_context_token_outside_the_vocabulary_is_a_400(server: LiveServer) -> None:
    r = server.http.post("/api/generate", json={
        "model": MODEL, "prompt": "hi", "context": [99999999], "stream": False,
        "options": {"num_predict": 1}})
    assert r.status_code == 400 and "context" in r.json()["error"], r.text


@pytest.mark.model
def test_a_huge_keep_alive_is_not_a_server_error(server: LiveServer) -> None:
    r = server.http.post("/api/generate", json={
        "model": MODEL, "prompt": "hi", "keep_alive": 1e13, "stream": False,
        "options": {"num_predict": 1}})
    assert r.status_code < 500, r.text
    assert r.status_code == 200 or "keep_alive" in r.json()["error"], r.text


@pytest.mark.model
def test_a_body_over_the_size_limit_is_a_413(server: LiveServer) -> None:
    padding = "x" * (33 << 20)
    body = json.dumps({"model": MODEL, "messages": [], "padding": padding}).encode()
    r = server.http.post("/api/chat", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 413, r.text[:200]
    assert r.json()["error"].startswith("request body too large"), r.text[:200]
