"""Who must show a key and what it allows: the auth middleware on the real app, driven in-process
with httpx's ASGITransport, which lets a test choose the peer address."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import socket
from pathlib import Path
from typing import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from llmd.api.app import AppState, build_app
from llmd.api.auth import AuthMiddleware, RefusalLog, needed_scope
from llmd.api.exposure import check_exposure, network_addresses
from llmd.config import Config, load_config
from llmd.errors import ConfigError
from llmd.keys import KeyStore, Scope
from llmd.store import Store
from llmd.system import messages
from llmd.system.journal import NOTICE

REMOTE = ("203.0.113.9", 40000)


@pytest.fixture
def keys(tmp_path: Path) -> KeyStore:
    return KeyStore(tmp_path / "api-keys.json")


def make_app(tmp_path: Path, keys: KeyStore, **settings: object) -> Starlette:
    config = dataclasses.replace(Config(models=tmp_path / "models"), **settings)
    state = AppState(config=config, store=Store(config.models), keys=keys)
    return build_app(state, middleware=[Middleware(AuthMiddleware, keys=keys, config=config)])


@pytest.fixture
async def client_for(tmp_path: Path, keys: KeyStore) -> AsyncIterator[object]:
    clients: list[httpx.AsyncClient] = []

    def make(peer: tuple[str, int] = REMOTE, **settings: object) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(make_app(tmp_path, keys, **settings), client=peer)
        client = httpx.AsyncClient(transport=transport, base_url="http://llmd")
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def test_under_loopback_local_peers_need_no_key_and_others_do(client_for, keys) -> None:
    _, secret = keys.add("ci")
    for peer in ("127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"):
        assert (await client_for((peer, 1)).get("/api/tags")).status_code == 200, peer
    remote = client_for(REMOTE)
    refused = await remote.get("/api/tags")
    assert (refused.status_code, refused.json()) == (401, {"error": "unauthorized"})
    assert refused.headers["www-authenticate"] == "Bearer"
    assert (await remote.get("/api/tags", headers=bearer(secret))).status_code == 200
    # the openai SDK always sends some api_key: a local one that is no key at all still passes
    assert (await client_for(("127.0.0.1", 1)).get("/v1/models", headers=bearer("unused"))).status_code == 200


async def test_a_key_is_read_from_bearer_or_x_api_key_and_a_wrong_one_is_401(client_for, keys) -> None:
    _, secret = keys.add("ci")
    client = client_for(auth="required")
    assert (await client.get("/api/tags", headers={"x-api-key": secret})).status_code == 200
    assert (await client.get("/api/tags", headers={"authorization": f"bearer {secret}"})).status_code == 200
    for headers in (bearer(secret + "x"), {"x-api-key": "llmd_guess"}, {"Authorization": secret}):
        assert (await client.get("/api/tags", headers=headers)).status_code == 401, headers
    openai_shaped = await client.get("/v1/models", headers=bearer("wrong"))
    assert openai_shaped.status_code == 401
    assert openai_shaped.json()["error"]["message"] == "unauthorized"


async def test_a_key_without_the_scope_gets_403_naming_the_key_and_the_scope(client_for, keys) -> None:
    _, inference = keys.add("ide")
    _, models = keys.add("ops", (Scope.MODELS,))
    client = client_for(auth="required")
    body = {"model": "nothing:here"}
    denied = await client.request("DELETE", "/api/delete", json=body, headers=bearer(inference))
    assert (denied.status_code, denied.json()) == (403, {"error": "key 'ide' lacks the 'models' scope"})
    allowed = await client.request("DELETE", "/api/delete", json=body, headers=bearer(models))
    assert allowed.status_code == 404  # through to the route, which finds no such model
    assert (await client.get("/api/tags", headers=bearer(models))).status_code == 200


async def test_probes_need_no_key_and_metrics_only_with_public_metrics(client_for, keys) -> None:
    client = client_for(auth="required")
    for path in ("/", "/health", "/ready"):
        assert (await client.get(path)).status_code != 401, path
    assert (await client.get("/metrics")).status_code == 401
    assert (await client_for(auth="required", public_metrics=True).get("/metrics")).status_code == 200


async def test_auth_none_checks_nothing_and_the_policy_is_read_per_request(
    client_for, keys, tmp_path: Path
) -> None:
    client = client_for(auth="none")
    assert (await client.get("/api/tags")).status_code == 200
    app = client._transport.app  # type: ignore[attr-defined]
    app.state.config = dataclasses.replace(app.state.config, auth="required")  # a reload
    assert (await client.get("/api/tags")).status_code == 401


async def test_an_expired_key_is_refused(client_for, keys: KeyStore) -> None:
    key, secret = keys.add("temp", lifetime=60)
    client = client_for(auth="required")
    assert (await client.get("/api/tags", headers=bearer(secret))).status_code == 200
    middleware = AuthMiddleware(lambda *a: None, keys, clock=lambda: key.created_at + 61)
    scope = {"type": "http", "method": "GET", "path": "/api/tags", "client": REMOTE,
             "headers": [(b"authorization", f"Bearer {secret}".encode())]}
    with pytest.raises(Exception) as refused:
        middleware.authenticate(scope, Config(auth="required"))
    assert getattr(refused.value, "reason", "") == "expired key"


async def test_a_key_at_its_max_concurrent_gets_429_with_retry_after(keys: KeyStore) -> None:
    key, secret = keys.add("ci", max_concurrent=1)
    started, finish = asyncio.Event(), asyncio.Event()

    async def slow(request: Request) -> PlainTextResponse:
        started.set()
        await finish.wait()
        return PlainTextResponse("done")

    app = Starlette(routes=[Route("/api/chat", slow, methods=["POST"])],
                    middleware=[Middleware(AuthMiddleware, keys=keys, config=Config(auth="required"))])
    transport = httpx.ASGITransport(app, client=REMOTE)
    async with httpx.AsyncClient(transport=transport, base_url="http://llmd") as client:
        first = asyncio.create_task(client.post("/api/chat", headers=bearer(secret)))
        await started.wait()
        try:
            async with asyncio.timeout(30):  # without the limit it would wait behind the first
                busy = await client.post("/api/chat", headers=bearer(secret))
        finally:
            finish.set()
        assert busy.status_code == 429 and busy.headers["retry-after"] == "1"
        assert busy.json() == {"error": "key 'ci' already has 1 request in flight (its max_concurrent)"}
        assert (await first).status_code == 200
        assert (await client.post("/api/chat", headers=bearer(secret))).status_code == 200


@pytest.mark.parametrize(("path", "scope"), [
    ("/api/generate", Scope.INFERENCE), ("/api/chat", Scope.INFERENCE),
    ("/api/embed", Scope.INFERENCE), ("/api/embeddings", Scope.INFERENCE),
    ("/api/tags", Scope.INFERENCE), ("/api/show", Scope.INFERENCE), ("/api/ps", Scope.INFERENCE),
    ("/api/version", Scope.INFERENCE), ("/v1/chat/completions", Scope.INFERENCE),
    ("/v1/models/smollm2:135m", Scope.INFERENCE),
    # routes that do not exist yet fall into place by their path
    ("/v1/responses", Scope.INFERENCE), ("/v1/messages", Scope.INFERENCE),
    ("/v1/messages/count_tokens", Scope.INFERENCE),
    ("/api/create", Scope.MODELS), ("/api/copy", Scope.MODELS), ("/api/delete", Scope.MODELS),
    ("/api/blobs/sha256:00", Scope.MODELS), ("/api/pull", Scope.MODELS), ("/api/push", Scope.MODELS),
    ("/api/verify", Scope.MODELS),
    ("/api/admin/something", Scope.ALL), ("/api/tagsx", Scope.ALL),
])
def test_the_scope_a_route_needs_comes_from_its_path(path: str, scope: Scope) -> None:
    assert needed_scope(path) is scope


def test_refusals_are_logged_at_notice_once_a_minute_per_client(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    refusals = RefusalLog(clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="llmd.api.auth"):
        for _ in range(5):
            refusals.record("203.0.113.9", "GET /api/tags", "unknown key", None)
        refusals.record("198.51.100.1", "GET /api/tags", "no key", None)
        now[0] = 61.0
        refusals.record("203.0.113.9", "POST /api/chat", "no key", None)
    records = [r for r in caplog.records if r.name == "llmd.api.auth"]
    assert [(r.levelno, r.CLIENT) for r in records] == [  # type: ignore[attr-defined]
        (NOTICE, "203.0.113.9"), (NOTICE, "198.51.100.1"), (NOTICE, "203.0.113.9")
    ]
    assert records[0].MESSAGE_ID == messages.REQUEST_REFUSED  # type: ignore[attr-defined]
    assert records[2].SUPPRESSED == 4  # type: ignore[attr-defined]


def test_only_listeners_off_loopback_count_as_exposed() -> None:
    sockets = []
    try:
        for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1"),
                             (socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
            sock = socket.socket(family)
            sock.bind((host, 0))  # bound, never listening
            sockets.append(sock)
        unix = socket.socket(socket.AF_UNIX)
        sockets.append(unix)
        exposed = network_addresses(sockets)
        assert [a.rsplit(":", 1)[0] for a in exposed] == ["0.0.0.0", "[::]"]
    finally:
        for sock in sockets:
            sock.close()


def test_auth_none_on_a_network_address_is_refused_unless_explicitly_allowed() -> None:
    with pytest.raises(ConfigError) as refused:
        check_exposure(Config(auth="none"), ["0.0.0.0:11434"], "/etc/llmd/llmd.yaml")
    message = str(refused.value)
    assert message.startswith("/etc/llmd/llmd.yaml: auth: none would let anyone who reaches 0.0.0.0:11434")
    assert "llmctl key add NAME" in message and "\n" not in message
    check_exposure(Config(auth="none", allow_unauthenticated_network=True), ["0.0.0.0:1"], "x")
    check_exposure(Config(auth="none"), [], "x")
    check_exposure(Config(auth="loopback"), ["0.0.0.0:1"], "x")


@pytest.mark.parametrize(("text", "problem"), [
    ("auth: no\n", "auth: must be one of loopback, required, none, got False"),
    ("auth: open\n", "auth: must be one of loopback, required, none, got 'open'"),
    ("allow_unauthenticated_network: maybe\n", "must be true or false, got 'maybe'"),
])
def test_auth_settings_are_checked_strictly(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "llmd.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=problem):
        load_config(path, {})


def test_the_key_file_lives_beside_the_models_or_in_the_state_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "llmd.yaml"
    empty.write_text("")
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    assert load_config(empty, {"OLLAMA_MODELS": "/srv/m/models"}).api_keys_path == Path(
        "/srv/m/api-keys.json")
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/llmd")
    assert load_config(empty, {"OLLAMA_MODELS": "/srv/m/models"}).api_keys_path == Path(
        "/var/lib/llmd/api-keys.json")
