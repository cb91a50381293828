"""/health, /ready and /metrics as probes: what they answer, and what they must not do."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import httpx
import pytest
from harness import live_server
from llmd.api.app import AppState, build_app
from llmd.config import Config
from llmd.store import Store
from llmd.system.requestlog import RequestLogMiddleware
from starlette.middleware import Middleware

DEADLINE = 60.0  # a bound against hangs, never a timing assertion


async def test_ready_is_503_starting_until_the_app_has_started_while_health_is_200(tmp_path: Path) -> None:
    app = build_app(AppState(config=Config(models=tmp_path), store=Store(tmp_path)))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        ready = await client.get("/ready")
        assert (ready.status_code, ready.json()) == (503, {"status": "starting"})
        health = await client.get("/health")
        assert (health.status_code, health.json()) == (200, {"status": "ok"})
        async with app.router.lifespan_context(app):
            ready = await client.get("/ready")
            assert (ready.status_code, ready.json()) == (200, {"status": "ready"})


async def test_probes_are_logged_at_debug_and_other_requests_at_info(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    app = build_app(AppState(config=Config(models=tmp_path), store=Store(tmp_path)),
                    middleware=[Middleware(RequestLogMiddleware)])
    caplog.set_level(logging.DEBUG, logger="llmd.request")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        for path in ("/health", "/ready", "/metrics", "/api/version"):
            await client.get(path)
    levels = {r.ENDPOINT: r.levelname for r in caplog.records if hasattr(r, "ENDPOINT")}  # type: ignore[attr-defined]
    assert levels == {"GET /health": "DEBUG", "GET /ready": "DEBUG", "GET /metrics": "DEBUG",
                      "GET /api/version": "INFO"}


def test_probes_on_a_kept_alive_connection_let_an_idle_daemon_exit(tmp_path: Path) -> None:
    config = tmp_path / "llmd.yaml"
    config.write_text("idle_exit: 3s\n")
    with live_server(tmp_path, args=["--config", str(config)]) as server:
        deadline = time.monotonic() + DEADLINE
        with httpx.Client(base_url=server.url, timeout=10) as prober:  # one connection, reused
            while server.process.poll() is None:
                assert time.monotonic() < deadline, "probes kept the daemon running"
                try:
                    for path in ("/health", "/ready", "/metrics"):
                        assert prober.get(path).status_code == 200
                except httpx.TransportError:
                    pass  # it is going away
                time.sleep(0.2)
        assert server.process.returncode == 0
        log = server.stderr()
    assert "idle; exiting" in log
    assert "/health" not in log and "/ready" not in log and "/metrics" not in log  # not at INFO
    assert "model loaded" not in log


def test_metrics_false_turns_metrics_off_and_leaves_health_and_ready(tmp_path: Path) -> None:
    config = tmp_path / "llmd.yaml"
    config.write_text("metrics: false\n")
    with live_server(tmp_path, args=["--config", str(config)]) as server:
        off = httpx.get(f"{server.url}/metrics")
        assert (off.status_code, off.text) == (404, "404 page not found")
        assert httpx.get(f"{server.url}/health").json() == {"status": "ok"}
        assert httpx.get(f"{server.url}/ready").json() == {"status": "ready"}
