"""SIGTERM while a generation streams: the stream finishes, runners stop, the exit status is 0."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from harness import create_smollm2
from system.activated import (
    DEADLINE,
    NotifyListener,
    listening_socket,
    server_env,
    spawn_activated,
)

pytestmark = pytest.mark.model

Activated = tuple[subprocess.Popen[bytes], str, NotifyListener]


@pytest.fixture
def activated(tmp_path: Path, gguf_path: Path) -> Iterator[Activated]:
    """A socket-activated llmd with smollm2:135m and five minutes to drain: (process, url, notify)."""
    listener = listening_socket()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    config = tmp_path / "llmd.yaml"
    config.write_text("drain_timeout: 5m\n")
    notify = NotifyListener()
    env = server_env(tmp_path / "m", {"NOTIFY_SOCKET": notify.path})
    process = spawn_activated(listener, ["--config", str(config)], env, tmp_path / "llmd.log")
    listener.close()
    try:
        notify.wait_for("READY=1")
        create_smollm2(url, gguf_path)
        yield process, url, notify
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        notify.close()


def test_sigterm_lets_a_streaming_generation_finish_then_exits_zero(activated: Activated) -> None:
    process, url, notify = activated
    body = {"model": "smollm2:135m", "prompt": "Count from one to fifty in words.",
            "options": {"num_predict": 48, "temperature": 0, "seed": 1}}
    chunks = []
    with httpx.stream("POST", f"{url}/api/generate", json=body, timeout=DEADLINE) as reply:
        if reply.status_code == 404:
            pytest.skip("/api/generate is not served yet")
        lines = reply.iter_lines()
        chunks.append(json.loads(next(lines)))
        process.send_signal(signal.SIGTERM)
        notify.wait_for("STOPPING=1")
        chunks.extend(json.loads(line) for line in lines if line)
    assert chunks[-1]["done"] is True
    assert "error" not in chunks[-1]
    assert len(chunks) > 2  # tokens kept coming after SIGTERM
    assert process.wait(DEADLINE) == 0
    # stopped: nothing accepts on the address any more
    with pytest.raises(httpx.TransportError):
        httpx.get(url, timeout=5)


def test_ready_turns_503_while_a_drain_lets_a_stream_finish_and_health_stays_200(
    activated: Activated,
) -> None:
    # what a load balancer sees: the instance says it is going, and still answers until it has gone
    process, url, notify = activated
    assert httpx.get(f"{url}/ready", timeout=DEADLINE).json() == {"status": "ready"}
    body = {"model": "smollm2:135m", "prompt": "Count from one to one hundred in words.",
            "options": {"num_predict": 300, "temperature": 0, "seed": 1}}
    with httpx.stream("POST", f"{url}/api/generate", json=body, timeout=DEADLINE) as reply:
        lines = reply.iter_lines()
        next(lines)
        process.send_signal(signal.SIGTERM)
        notify.wait_for("STOPPING=1")
        ready = httpx.get(f"{url}/ready", timeout=DEADLINE)
        health = httpx.get(f"{url}/health", timeout=DEADLINE)
        rest = [json.loads(line) for line in lines if line]
    assert (ready.status_code, ready.json()) == (503, {"status": "draining"})
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert rest[-1]["done"] is True and "error" not in rest[-1]
    assert process.wait(DEADLINE) == 0
