"""What a client and an operator see of runners: the CPU they run on, and a crash loop cut short."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from harness import create_smollm2, live_server, run_llmctl

pytestmark = pytest.mark.model

MODEL = "smollm2:135m"
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "Hello there, who are you?"}],
        "stream": False, "options": {"num_predict": 2, "num_ctx": 256}}


def test_ps_and_llmctl_ps_verbose_name_the_cpu_variant_and_features(
    tmp_path: Path, gguf_path: Path
) -> None:
    with live_server(tmp_path) as server:
        create_smollm2(server.url, gguf_path, MODEL)
        assert server.http.post("/api/chat", json=CHAT).status_code == 200
        [model] = server.http.get("/api/ps").json()["models"]
        cpu = model["cpu"]
        # the development venv has one CPU module; the package one of its variants
        assert cpu["variant"] and cpu["variant"] != "unknown"
        assert "SSE3" in cpu["features"]  # every x86-64 build of llama.cpp has it
        assert not any(f.startswith("AMX") for f in cpu["features"])

        result = run_llmctl("ps", "-v", env=server.env)
        assert result.returncode == 0, result.stderr
        header, row = result.stdout.splitlines()[:2]
        assert "CPU" in header and "FEATURES" in header
        assert cpu["variant"] in row.split() and "SSE3" in row.split()
        loaded = [line for line in server.stderr().splitlines() if "model loaded" in line]
        assert loaded and f"CPU_VARIANT={cpu['variant']}" in loaded[-1]


def test_a_runner_crashing_at_every_decode_is_spawned_three_times_then_refused_with_503(
    tmp_path: Path, gguf_path: Path
) -> None:
    with live_server(tmp_path, env={"LLMD_RUNNER_FAULT": "decode"}) as server:
        create_smollm2(server.url, gguf_path, MODEL)
        for _ in range(3):
            answer = server.http.post("/api/chat", json=CHAT)
            assert answer.status_code == 500
            assert answer.json() == {
                "error": "llama runner process has terminated: signal: segmentation fault"
            }
        for path in ("/api/chat", "/v1/chat/completions"):
            answer = server.http.post(path, json=CHAT)
            assert answer.status_code == 503
            assert int(answer.headers["retry-after"]) >= 1
            text = answer.text
            assert "segmentation fault" in text and "journalctl -u llmd" in text
        log = server.stderr().splitlines()
        assert sum("llmd.scheduler: model loaded" in line for line in log) == 3
        crashes = [line for line in log if "llmd.scheduler: runner crashed" in line]
        assert len(crashes) == 3
        fields = dict(re.findall(r"([A-Z_]+)=(\S+)", crashes[-1]))
        assert fields["SIGNAL"] == "SIGSEGV"
        assert fields["REQUESTS"] == "1"
        assert fields["FAILURES"] == "3" and int(fields["COOLDOWN"]) > 0
        assert fields["CPU_VARIANT"] not in ("", "unknown")
