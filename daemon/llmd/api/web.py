"""Browser-facing guards, as Ollama installs them in front of every route: CORS, then the Host check.

CORS follows gin-contrib/cors as Ollama configures it (server/routes.go ``GenerateRoutes``): a
request whose ``Origin`` is not allowed is refused with 403 outright, not merely left without
CORS headers, and a preflight from an allowed origin is answered 204 without reaching a route.

The Host check is Ollama's defence against DNS rebinding (``allowedHostsMiddleware``): when the
listener is on loopback, a page on ``evil.example`` that resolved itself to 127.0.0.1 still sends
``Host: evil.example``, and gets 403.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable, Sequence
from pathlib import Path

from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

from llmd.config import Config

# envconfig.AllowedOrigins: the user's origins come first, then these local ones.
_LOCAL_HOSTS = ("localhost", "127.0.0.1", "0.0.0.0")
DEFAULT_ORIGINS: tuple[str, ...] = (
    *(f"{scheme}://{host}{port}" for host in _LOCAL_HOSTS for port in ("", ":*") for scheme in ("http", "https")),
    "app://*",
    "file://*",
    "tauri://*",
    "vscode-webview://*",
    "vscode-file://*",
)

# The browser may send these on a cross-origin request; the x-stainless ones are the openai SDKs'.
ALLOWED_HEADERS: tuple[str, ...] = (
    "Authorization",
    "Content-Type",
    "User-Agent",
    "Accept",
    "X-Requested-With",
    "OpenAI-Beta",
    "x-stainless-arch",
    "x-stainless-async",
    "x-stainless-custom-poll-interval",
    "x-stainless-helper-method",
    "x-stainless-lang",
    "x-stainless-os",
    "x-stainless-package-version",
    "x-stainless-poll-helper",
    "x-stainless-retry-count",
    "x-stainless-runtime",
    "x-stainless-runtime-version",
    "x-stainless-timeout",
)
ALLOWED_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")


def _pattern(origin: str) -> re.Pattern[str]:
    # gin-contrib/cors wildcards: "*" stands for any run of characters
    return re.compile("^" + ".*".join(re.escape(part) for part in origin.split("*")) + "$", re.IGNORECASE)


class OriginPolicy:
    """Which ``Origin`` values may call the API; ``"*"`` among them allows every origin."""

    def __init__(self, origins: Iterable[str]) -> None:
        listed = [o.strip() for o in origins if o.strip()]
        self.allow_all = "*" in listed
        self._patterns = [_pattern(o) for o in listed if o != "*"]

    def allows(self, origin: str) -> bool:
        return self.allow_all or any(p.match(origin) for p in self._patterns)


async def _reply(send: Send, status: int, headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
    await send({"type": "http.response.start", "status": status, "headers": list(headers)})
    await send({"type": "http.response.body", "body": b""})


class CORSMiddleware:
    def __init__(self, app: ASGIApp, origins: Iterable[str]) -> None:
        self.app = app
        self.policy = OriginPolicy(origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        host = headers.get("host", "")
        # A same-origin fetch() also sends Origin; gin-contrib/cors lets it through untouched.
        if not origin or origin in (f"http://{host}", f"https://{host}"):
            await self.app(scope, receive, send)
            return
        if not self.policy.allows(origin):
            await _reply(send, 403)
            return
        allow_origin = b"*" if self.policy.allow_all else origin.encode("latin-1")
        common = [(b"access-control-allow-origin", allow_origin)]
        if not self.policy.allow_all:
            common.append((b"vary", b"Origin"))
        if scope["method"] == "OPTIONS":
            preflight = [
                *common,
                (b"access-control-allow-methods", ",".join(ALLOWED_METHODS).encode()),
                (b"access-control-allow-headers", ",".join(ALLOWED_HEADERS).encode()),
            ]
            # Chrome's Private Network Access: Ollama sets AllowBrowserPrivateNetwork
            if headers.get("access-control-request-private-network") == "true":
                preflight.append((b"access-control-allow-private-network", b"true"))
            await _reply(send, 204, preflight)
            return

        async def send_with_cors(message: dict) -> None:  # type: ignore[type-arg]
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *common]}
            await send(message)

        await self.app(scope, receive, send_with_cors)


def _host_part(host_header: str) -> str:
    """The host of a ``Host`` header without its port (Go's net.SplitHostPort, else as is)."""
    if host_header.startswith("["):
        end = host_header.find("]")
        return host_header[1:end] if end > 0 else host_header
    if host_header.count(":") == 1:
        return host_header.partition(":")[0]
    return host_header


def _local_addresses(
    fib_trie: Path = Path("/proc/net/fib_trie"), if_inet6: Path = Path("/proc/net/if_inet6")
) -> set[str]:
    """The addresses of this machine's interfaces, as Go's net.InterfaceAddrs gives Ollama.

    Read from the kernel, never by resolving our host name: that is a DNS query, and the Host
    check runs on the event loop for every request.
    """
    found: set[str] = set()
    try:
        lines = fib_trie.read_text().splitlines()
    except OSError:
        lines = []
    for previous, line in zip(lines, lines[1:]):
        if line.strip() == "/32 host LOCAL" and "|--" in previous:
            found.add(previous.split("|--", 1)[1].strip())
    try:
        for line in if_inet6.read_text().splitlines():
            hexa = line.split()[0] if line.split() else ""
            if len(hexa) == 32:
                found.add(str(ipaddress.IPv6Address(bytes.fromhex(hexa))))
    except (OSError, ValueError):
        pass
    return found


def allowed_host(host: str) -> bool:
    """Whether a loopback listener may answer a request for ``Host: host`` (port removed)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is not None:
        return (
            address.is_loopback
            or address.is_private
            or address.is_unspecified
            or str(address) in _local_addresses()
        )
    host = host.lower().rstrip(".")
    if host in ("", "localhost") or host == socket.gethostname().lower():
        return True
    return host.endswith((".localhost", ".local", ".internal"))


def _is_loopback(server: tuple[str, int] | None) -> bool:
    if not server:
        return False
    try:
        return ipaddress.ip_address(server[0]).is_loopback
    except ValueError:
        return False


class HostCheckMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Only a loopback listener needs it: one bound to a public address is reached by any name.
        if scope["type"] != "http" or not _is_loopback(scope.get("server")):
            await self.app(scope, receive, send)
            return
        host = _host_part(Headers(scope=scope).get("host", ""))
        if not allowed_host(host):
            await _reply(send, 403)
            return
        if scope["method"] == "OPTIONS":
            await _reply(send, 204)  # as Ollama: a preflight that passed CORS goes no further
            return
        await self.app(scope, receive, send)


def middleware(config: Config) -> list[Middleware]:
    """CORS outermost, then the Host check: the order Ollama's router applies them in."""
    origins = (*config.origins, *DEFAULT_ORIGINS)
    return [Middleware(CORSMiddleware, origins=origins), Middleware(HostCheckMiddleware)]
