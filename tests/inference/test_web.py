"""CORS and the Host check sit in front of every route, as Ollama installs them."""

from __future__ import annotations

import pytest
from llmd.api.web import CORSMiddleware, HostCheckMiddleware, OriginPolicy, allowed_host
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = Starlette(
        routes=[Route("/", hello, methods=["GET", "POST"])],
        middleware=[Middleware(CORSMiddleware, origins=["https://app.example", "http://localhost:*"]),
                    Middleware(HostCheckMiddleware)],
    )
    return TestClient(app, base_url="http://127.0.0.1:11434")


def test_an_allowed_origin_gets_its_origin_echoed(client: TestClient) -> None:
    response = client.get("/", headers={"Origin": "https://app.example"})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "https://app.example"


def test_a_disallowed_origin_is_refused_with_403(client: TestClient) -> None:
    assert client.get("/", headers={"Origin": "https://evil.example"}).status_code == 403


def test_preflight_from_an_allowed_origin_lists_the_openai_headers(client: TestClient) -> None:
    response = client.options("/", headers={
        "Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-stainless-os",
    })
    assert response.status_code == 204
    assert "x-stainless-os" in response.headers["access-control-allow-headers"]
    assert "POST" in response.headers["access-control-allow-methods"]


def test_origin_star_allows_every_origin() -> None:
    assert OriginPolicy(["*"]).allows("https://anything.example")
    assert not OriginPolicy(["https://a.example"]).allows("https://b.example")


def test_a_foreign_host_header_on_a_loopback_listener_is_refused(client: TestClient) -> None:
    assert client.get("/", headers={"Host": "evil.example"}).status_code == 403
    assert client.get("/", headers={"Host": "localhost:11434"}).status_code == 200


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "10.1.2.3", "::1", "box.local",
                                  "svc.internal", "a.localhost", ""])
def test_local_hosts_are_allowed(host: str) -> None:
    assert allowed_host(host)


@pytest.mark.parametrize("host", ["example.com", "8.8.8.8", "localhost.evil.com"])
def test_public_hosts_are_refused(host: str) -> None:
    assert not allowed_host(host)


def test_the_host_check_never_resolves_a_name_on_the_event_loop(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stalled resolver would stall every client: the check reads interface addresses instead.
    import socket

    def no_dns(*_: object) -> object:
        raise AssertionError("a DNS lookup in the Host check")

    for name in ("gethostbyname", "gethostbyname_ex", "getaddrinfo", "gethostbyaddr"):
        monkeypatch.setattr(socket, name, no_dns)
    assert client.get("/", headers={"Host": "8.8.8.8"}).status_code == 403
    assert client.get("/", headers={"Host": "1.1.1.1:11434"}).status_code == 403


def test_an_address_of_one_of_our_interfaces_is_allowed() -> None:
    from llmd.api.web import _local_addresses

    addresses = _local_addresses()
    assert "127.0.0.1" in addresses
    assert all(allowed_host(a) for a in addresses)
