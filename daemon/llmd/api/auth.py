"""API-key authentication in front of every route: who must show a key, and what it allows.

The policy is ``Config.auth``, read per request so ``systemctl reload`` applies it:

    loopback  peers on 127.0.0.0/8 and ::1 need no key, every other peer needs one (default)
    required  every request needs a key
    none      nothing is checked (llmd refuses to serve a network address so: ``exposure.py``)

A key arrives as ``Authorization: Bearer <key>`` (the openai SDKs' ``api_key``, the ollama
clients' ``headers=`` or ``OLLAMA_API_KEY``) or as ``x-api-key`` (Anthropic-style clients). The
scope a request needs comes from its path alone (``SCOPE_RULES``, first match wins), so a new
``/v1/*`` inference route needs no edit here; a path no rule names needs ``all``, which keeps a
future admin route closed until someone decides otherwise. ``PUBLIC_PATHS`` never need a key.

Every refusal (401, 403, 429) leaves through ``AuthMiddleware.refuse``: the one place to count
them (the metrics' rejected-by-reason counter).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import time
from collections.abc import Callable

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope as AsgiScope, Send

from llmd.api.errors import response_for
from llmd.config import Config
from llmd.errors import KeyBusy, LlmdError, ScopeMissing, Unauthorized
from llmd.keys import ApiKey, KeyStore, Scope
from llmd.system import messages
from llmd.system.journal import NOTICE
from llmd.system.requestlog import KEY_NAME

log = logging.getLogger(__name__)

# Probes for load balancers and service managers: never behind a key. Extend as routes appear.
# "/" too: its "Ollama is running" is the heartbeat Ollama's CLI (and llmctl) sends before
# anything else, and it tells a stranger no more than a 401 would.
PUBLIC_PATHS: frozenset[str] = frozenset({"/", "/health", "/ready"})
METRICS_PATH = "/metrics"  # public only with Config.public_metrics

SCOPE_RULES: tuple[tuple[re.Pattern[str], Scope], ...] = (
    (re.compile(r"/api/(create|copy|delete|pull|push|verify|blobs/.*)"), Scope.MODELS),
    (re.compile(r"/api/(generate|chat|embed|embeddings|tags|show|ps|version|openapi\.json)"),
     Scope.INFERENCE),
    (re.compile(r"/v1/.*"), Scope.INFERENCE),
    (re.compile(r"/metrics"), Scope.INFERENCE),
)
UNLISTED = Scope.ALL

REFUSAL_LOG_INTERVAL = 60.0  # seconds: at most one NOTICE per client address in this time
_MAX_TRACKED_CLIENTS = 1024


def needed_scope(path: str) -> Scope:
    for pattern, scope in SCOPE_RULES:
        if pattern.fullmatch(path):
            return scope
    return UNLISTED


def is_public(path: str, config: Config) -> bool:
    return path in PUBLIC_PATHS or (config.public_metrics and path == METRICS_PATH)


def presented_key(headers: Headers) -> str | None:
    authorization = headers.get("authorization", "")
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return headers.get("x-api-key", "").strip() or None


def client_address(scope: AsgiScope) -> str:
    client = scope.get("client")
    return str(client[0]).removeprefix("::ffff:") if client else ""


def is_loopback(address: str) -> bool:
    """127.0.0.0/8 and ::1 (``client_address`` has unmapped ::ffff:127.x already); an unknown
    peer, with no address, is not."""
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


class RefusalLog:
    """NOTICE records of refused requests, at most one per client address per interval; the next
    one counts those left out (SUPPRESSED), so guessing keys cannot flood the journal."""

    def __init__(
        self, interval: float = REFUSAL_LOG_INTERVAL, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.interval = interval
        self._clock = clock
        self._clients: dict[str, tuple[float, int]] = {}  # address -> (last logged, left out)

    def record(self, client: str, endpoint: str, reason: str, key_name: str | None) -> None:
        now = self._clock()
        last, left_out = self._clients.get(client, (None, 0))
        if last is not None and now - last < self.interval:
            self._clients[client] = (last, left_out + 1)
            return
        if len(self._clients) >= _MAX_TRACKED_CLIENTS:
            self._forget_before(now - self.interval)
        self._clients[client] = (now, 0)
        log.log(NOTICE, "request refused", extra={
            "MESSAGE_ID": messages.REQUEST_REFUSED,
            "CLIENT": client,
            "ENDPOINT": endpoint,
            "REASON": reason,
            "KEY_NAME": key_name,
            "SUPPRESSED": left_out or None,
        })

    def _forget_before(self, moment: float) -> None:
        self._clients = {c: v for c, v in self._clients.items() if v[0] >= moment}
        if len(self._clients) >= _MAX_TRACKED_CLIENTS:  # all recent: keep the newest half
            newest = sorted(self._clients.items(), key=lambda item: item[1][0])
            self._clients = dict(newest[len(newest) // 2:])


class Refusal(Exception):
    """Why a request is refused: the error the client gets, and the reason the log gets."""

    def __init__(self, error: LlmdError, reason: str, key_name: str | None = None) -> None:
        super().__init__(reason)
        self.error = error
        self.reason = reason
        self.key_name = key_name


class AuthMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        keys: KeyStore,
        config: Config | None = None,
        refusals: RefusalLog | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app = app
        self.keys = keys
        self.config = config or Config()  # used only when the app holds none
        self.refusals = refusals or RefusalLog()
        self._clock = clock
        self._writes: set[asyncio.Task[None]] = set()

    def _current_config(self, scope: AsgiScope) -> Config:
        config = getattr(getattr(scope.get("app"), "state", None), "config", None)
        return config if isinstance(config, Config) else self.config

    def authenticate(self, scope: AsgiScope, config: Config) -> ApiKey | None:
        """The key the request is made with, None if it needs none; Refusal otherwise."""
        if config.auth == "none" or scope["method"] == "OPTIONS" or is_public(scope["path"], config):
            return None  # a CORS preflight never carries credentials
        secret = presented_key(Headers(scope=scope))
        key = self.keys.find(secret) if secret is not None else None
        if key is not None and key.expired(self._clock()):
            expired, key = key, None
        else:
            expired = None
        if config.auth == "loopback" and is_loopback(client_address(scope)):
            return key  # no key needed; a valid one sent anyway still names the caller
        if key is None:
            if expired is not None:
                raise Refusal(Unauthorized(), "expired key", expired.name)
            raise Refusal(Unauthorized(), "no key" if secret is None else "unknown key")
        needed = needed_scope(scope["path"])
        if not key.grants(needed):
            raise Refusal(ScopeMissing(key.name, needed.value), "scope missing", key.name)
        return key

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            key = self.authenticate(scope, self._current_config(scope))
        except Refusal as refusal:
            await self.refuse(scope, receive, send, refusal)
            return
        if key is None:
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})[KEY_NAME] = key.name
        if not self.keys.acquire(key):
            error = KeyBusy(key.name, key.max_concurrent)
            await self.refuse(scope, receive, send, Refusal(error, "too many requests", key.name))
            return
        try:
            if self.keys.touch(key):
                self._write_usage()
            await self.app(scope, receive, send)
        finally:
            self.keys.release(key)

    async def refuse(self, scope: AsgiScope, receive: Receive, send: Send, refusal: Refusal) -> None:
        """Answer 401, 403 or 429: every refusal of this module passes here."""
        if refusal.key_name is not None:
            scope.setdefault("state", {})[KEY_NAME] = refusal.key_name
        metrics = getattr(getattr(scope.get("app"), "state", None), "metrics", None)
        if metrics is not None:
            metrics.rejected("key_busy" if isinstance(refusal.error, KeyBusy) else "unauthorized")
        if not isinstance(refusal.error, KeyBusy):
            self.refusals.record(
                client_address(scope), f"{scope['method']} {scope['path']}",
                refusal.reason, refusal.key_name,
            )
        await response_for(scope["path"], refusal.error)(scope, receive, send)

    def _write_usage(self) -> None:
        task = asyncio.create_task(asyncio.to_thread(self._write_usage_now))
        self._writes.add(task)  # referenced until done, or it may be collected mid-write
        task.add_done_callback(self._writes.discard)

    def _write_usage_now(self) -> None:
        try:
            self.keys.write_usage()
        except (OSError, LlmdError) as exc:
            log.warning("cannot record API key use", extra={"error": str(exc)})
