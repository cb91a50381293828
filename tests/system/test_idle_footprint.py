"""What an idle llmd has loaded: the inference and registry libraries wait for their first use."""

from __future__ import annotations

from pathlib import Path

import httpx
from harness import live_server


def test_an_idle_daemon_has_mapped_neither_llama_cpp_nor_numpy(tmp_path: Path) -> None:
    # Inference runs in runner processes, and GGUF headers are read without numpy: the main
    # process keeps its memory small by never loading either (the idle RSS target is 80 MB).
    with live_server(tmp_path) as server:
        assert httpx.get(f"{server.url}/api/tags", timeout=30).status_code == 200
        maps = Path(f"/proc/{server.process.pid}/maps").read_text()
    assert "libllama" not in maps
    assert "libggml" not in maps
    assert "numpy" not in maps
