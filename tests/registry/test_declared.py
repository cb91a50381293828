"""llmd.yaml's ``models:`` list on a live daemon: pulled from the registry at start, checked
against its pin, preloaded, and /ready 503 until then or, for a pin the registry does not serve,
for good."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest
from harness import live_server
from llmd.store import ModelName, Store
from registry.registry_server import Registry

pytestmark = pytest.mark.model

DEADLINE = 120.0  # a hang guard for the daemon's start-up work, never a timing assertion
WRONG_PIN = "sha256:" + "0" * 64


def manifest_pin(store: Store, name: str) -> str:
    return "sha256:" + asyncio.run(store.get(ModelName.parse(name))).digest


def write_config(path: Path, name: str, pin: str, preload: bool = True) -> list[str]:
    path.write_text(
        "models:\n"
        f"  - name: {name}@{pin}\n"
        f"    preload: {'true' if preload else 'false'}\n"
        "    insecure: true\n"
    )
    return ["--config", str(path)]


def wait_ready(url: str, deadline: float = DEADLINE) -> httpx.Response:
    """/ready until it says 200, or its last answer when the deadline passes."""
    end = time.monotonic() + deadline
    while True:
        answer = httpx.get(f"{url}/ready", timeout=10)
        if answer.status_code == 200 or time.monotonic() > end:
            return answer
        time.sleep(0.2)


def test_a_pinned_model_is_pulled_and_preloaded_before_the_host_is_ready(
    tmp_path: Path, registry: Registry, pushed: tuple[str, list[object]], source_store: Store
) -> None:
    name, _ = pushed
    args = write_config(tmp_path / "llmd.yaml", name, manifest_pin(source_store, name))
    with live_server(tmp_path, args=args) as server:
        assert wait_ready(server.url).status_code == 200
        tags = [m["name"] for m in server.http.get("/api/tags").json()["models"]]
        assert name in tags
        resident = [m["name"] for m in server.http.get("/api/ps").json()["models"]]
        assert resident == [name]
        # a request for it is served without loading anything
        answer = server.http.post("/api/generate", json={
            "model": name, "prompt": "Hi", "stream": False, "options": {"num_predict": 2}})
        assert answer.status_code == 200
        assert answer.json().get("load_duration", 0) < 100_000_000  # omitted when 0


def test_a_pin_the_registry_does_not_serve_keeps_the_host_not_ready_and_pulls_nothing(
    tmp_path: Path, registry: Registry, pushed: tuple[str, list[object]]
) -> None:
    name, _ = pushed
    args = write_config(tmp_path / "llmd.yaml", name, WRONG_PIN)
    with live_server(tmp_path, args=args) as server:
        deadline = time.monotonic() + DEADLINE
        while "pin mismatch" not in server.stderr() and time.monotonic() < deadline:
            time.sleep(0.2)
        answer = httpx.get(f"{server.url}/ready", timeout=10)
        assert answer.status_code == 503
        assert "pin mismatch" in answer.json()["detail"]
        assert WRONG_PIN in answer.json()["detail"]
        assert server.http.get("/api/tags").json()["models"] == []
        assert server.http.get("/api/ps").json()["models"] == []
        assert "declared model not provisioned" in server.stderr()
        assert httpx.get(f"{server.url}/health", timeout=10).status_code == 200  # alive, though
