"""The environment of the fuzz and soak daemons: two slots, a small context, and no network.

The daemon's registry client (httpx, which honours the proxy variables) is pointed at a loopback
port nothing listens on, so a fuzzed /api/pull or /api/push fails fast and no traffic leaves the
machine whatever model name the fuzzer makes up.
"""

from __future__ import annotations

from harness import free_port

MODEL = "smollm2:135m"


def offline_env() -> dict[str, str]:
    dead = f"http://127.0.0.1:{free_port()}"
    names = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")
    return {**{n: dead for n in names}, **{n.lower(): dead for n in names}, "NO_PROXY": "", "no_proxy": ""}


def fuzz_env(**extra: str) -> dict[str, str]:
    return {"OLLAMA_NUM_PARALLEL": "2", "OLLAMA_CONTEXT_LENGTH": "512", **offline_env(), **extra}
