"""One live llmd for the fuzz and soak suites: smollm2:135m, two slots, a small context, no network.

The daemon's registry client (httpx, which honours the proxy variables) is pointed at a loopback
port nothing listens on, so a fuzzed /api/pull or /api/push fails fast and no traffic leaves the
machine whatever model name the fuzzer makes up.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import LiveServer, create_smollm2, free_port, live_server

MODEL = "smollm2:135m"


def offline_env() -> dict[str, str]:
    dead = f"http://127.0.0.1:{free_port()}"
    names = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")
    return {**{n: dead for n in names}, **{n.lower(): dead for n in names}, "NO_PROXY": "", "no_proxy": ""}


def fuzz_env(**extra: str) -> dict[str, str]:
    return {"OLLAMA_NUM_PARALLEL": "2", "OLLAMA_CONTEXT_LENGTH": "512", **offline_env(), **extra}


@pytest.fixture(scope="session")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory, gguf_path: Path) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("fuzz-server"), env=fuzz_env()) as live:
        create_smollm2(live.url, gguf_path, MODEL)
        yield live
