"""``llmd serve``: wire Config, Store, Scheduler and the app together and run uvicorn.

Seams for systemd integration: ``serve(config, sockets=..., on_ready=..., lifespan=...)``.
Pass the socket-activated listeners as ``sockets`` (already bound; uvicorn only accepts on
them), and ``on_ready`` to send READY=1 once uvicorn is accepting.

systemd integration (``llmd.system``): without ``sockets``, the ones systemd passed are used
(else ``config.host`` is bound); a ServiceManager sends READY/STATUS/WATCHDOG/STOPPING, reloads
the configuration on SIGHUP (and for D-Bus ``ReloadConfig``) and exits when idle.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import functools
import logging
import math
import socket
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Sequence

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware

from llmd.api import web
from llmd.api.app import AppState, Lifespan, build_app
from llmd.api.auth import AuthMiddleware
from llmd.api.disconnect import CancelOnDisconnectMiddleware
from llmd.api.exposure import check_exposure, network_addresses
from llmd.api.limits import BodyLimitMiddleware
from llmd.config import Config, load_config
from llmd.errors import ConfigError, LlmdError
from llmd.keys import KeyStore
from llmd.metrics import Metrics
from llmd.provision import Provisioner
from llmd.scheduler import Scheduler
from llmd.store import Store
from llmd.system import activation, journal
from llmd.templates import check_go_template
from llmd.system.reload import Reloader
from llmd.system.requestlog import RequestLogMiddleware
from llmd.system.service import ServiceManager

log = logging.getLogger(__name__)


def _source_of(config: Config, env_var: str) -> str:
    """Where a setting came from, for ``llmd: <source>: <key>: <problem>`` messages."""
    sources = [s.strip() for s in config.source.split(",")]
    if env_var in sources:
        return env_var
    files = [s for s in sources if s.startswith("/") or s.endswith((".yaml", ".yml"))]
    return files[-1] if files else "defaults"


def listen_socket(config: Config) -> socket.socket:
    """A listening TCP socket on ``config.host``; ConfigError when the address is unusable."""
    address = config.host
    host = address.host or None  # "" binds every interface, as Go's net.Listen(":port") does
    where = f"{address.host or '*'}:{address.port}"
    source = _source_of(config, "OLLAMA_HOST")
    try:
        infos = socket.getaddrinfo(
            host, address.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise ConfigError(source, "host", f"cannot resolve {where}: {exc.strerror}") from None
    family, kind, proto, _, sockaddr = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(sockaddr)
        sock.listen(socket.SOMAXCONN)
    except OSError as exc:
        sock.close()
        problem = exc.strerror or str(exc)
        if exc.errno == errno.EADDRINUSE:
            problem = "address already in use"
        raise ConfigError(source, "host", f"cannot listen on {where}: {problem.lower()}") from None
    sock.set_inheritable(False)
    return sock


def open_store(config: Config) -> Store:
    try:
        # /api/create refuses a TEMPLATE that does not parse, as the README promises
        return Store(config.models, noprune=config.noprune, template_check=check_go_template)
    except OSError as exc:
        problem = (exc.strerror or str(exc)).lower()
        source = _source_of(config, "OLLAMA_MODELS")
        raise ConfigError(source, "models", f"{config.models}: {problem}") from None


@contextlib.asynccontextmanager
async def _run_scheduler(scheduler: Scheduler) -> AsyncIterator[None]:
    """Start the scheduler with the app; on the way out, drain and stop every runner."""
    await scheduler.start()
    try:
        yield
    finally:
        await scheduler.close()


def default_middleware(config: Config) -> list[Middleware]:
    """The per-request log record, then CORS and the Host check (outermost first): the record
    also covers requests those refuse. Innermost, a vanished client cancels its request, and no
    body over ``max_request_bytes`` is read."""
    return [
        Middleware(RequestLogMiddleware, debug=config.debug),
        *web.middleware(config),
        Middleware(CancelOnDisconnectMiddleware),
        Middleware(BodyLimitMiddleware, max_bytes=config.max_request_bytes),
    ]


def _bus_manager(
    state: AppState, reload: Callable[[], Any] | None, provisioner: Provisioner | None
) -> contextlib.AbstractAsyncContextManager[Any]:
    """org.llmd.Manager1 on the system bus while serving; only a warning when there is no bus."""
    from llmd.bus.service import export_manager

    return export_manager(state.config, state.store, state.scheduler, reload=reload,
                          keys=state.keys, provisioner=provisioner)


def open_keys(config: Config) -> KeyStore:
    """The API keys; ConfigError when their file is unreadable or malformed."""
    keys = KeyStore(config.api_keys_path)
    keys.check()
    return keys


@contextlib.asynccontextmanager
async def _provisioning(provisioner: Provisioner | None) -> AsyncIterator[None]:
    """Pull and preload the declared models in the background while the app serves."""
    if provisioner is None:
        yield
        return
    task = asyncio.create_task(provisioner.run(), name="llmd-provision")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def apply_config(app: Starlette, config: Config) -> None:
    """Put a reloaded Config in effect: the app's holder, the scheduler, CORS origins, log level."""
    app.state.config = config
    app.state.llmd = dataclasses.replace(app.state.llmd, config=config)
    app.state.metrics.enabled = config.metrics
    if app.state.scheduler is not None:
        app.state.scheduler.reconfigure(config)
    # Middleware is built from these specs on the next request once the stack is dropped;
    # requests in flight finish on the old one.
    fresh = {m.cls: m for m in default_middleware(config)}
    app.user_middleware = [fresh.get(m.cls, m) for m in app.user_middleware]
    app.middleware_stack = None
    journal.set_level(config.debug)
    manager = getattr(app.state, "bus_manager", None)
    if manager is not None:
        manager.reconfigure(config)


def build_server_app(
    config: Config,
    *,
    middleware: Sequence[Middleware] | None = None,
    lifespan: Lifespan | None = None,
    reload: Callable[[], Any] | None = None,
) -> Starlette:
    """The app ``serve`` runs; ``middleware`` None means ``default_middleware(config)``.

    ``reload`` is what D-Bus ``ReloadConfig`` calls (None: the bus reloads by itself)."""
    if middleware is None:
        middleware = default_middleware(config)
    store = open_store(config)
    keys = open_keys(config)
    # Innermost, and not in default_middleware: a reload rebuilds those, while this one keeps its
    # requests-in-flight counts per key (and it reads the policy from app.state.config anyway).
    middleware = [*middleware, Middleware(AuthMiddleware, keys=keys, config=config)]
    metrics = Metrics(config.metrics)
    scheduler = Scheduler(config, metrics=metrics)
    provisioner = Provisioner(config, store, scheduler) if config.declared_models else None
    state = AppState(config=config, store=store, scheduler=scheduler, metrics=metrics, keys=keys,
                     not_ready=provisioner.not_ready if provisioner else lambda: None)

    @contextlib.asynccontextmanager
    async def _lifespan(app: Starlette) -> AsyncIterator[None]:
        async with (_run_scheduler(state.scheduler), _provisioning(provisioner),
                    _bus_manager(state, reload, provisioner) as manager):
            # a SIGHUP reload reaches the bus object through apply_config
            app.state.bus_manager = manager
            if lifespan is None:
                yield
            else:
                async with lifespan(app):
                    yield

    return build_app(state, middleware=middleware, lifespan=_lifespan)


class _Server(uvicorn.Server):
    def __init__(
        self,
        config: uvicorn.Config,
        on_ready: Callable[[], None] | None,
        service: ServiceManager | None = None,
    ) -> None:
        super().__init__(config)
        self._on_ready = on_ready
        self._service = service
        self._draining = False

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self._service is not None:
            self._service.started(self)
        if self.started and self._on_ready is not None:
            self._on_ready()

    def handle_exit(self, sig: int, frame: Any) -> None:
        # The first SIGTERM/SIGINT drains before uvicorn stops accepting: /ready turns 503 while
        # the requests in flight finish, so a load balancer can notice. A second one, or one
        # before start-up completed, is uvicorn's: stop accepting and finish now.
        if self._service is None or not self.started or self.should_exit or self._draining:
            super().handle_exit(sig, frame)
            return
        self._draining = True
        self._service.drain(functools.partial(self._drained, sig, frame))

    def _drained(self, sig: int, frame: Any, left: float) -> None:
        # uvicorn's own graceful wait gets what is left of drain_timeout, not all of it again
        self.config.timeout_graceful_shutdown = math.ceil(left)
        super().handle_exit(sig, frame)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self._service is not None:
            self._service.stopping()
        await super().shutdown(sockets)


async def serve(
    config: Config,
    sockets: Sequence[socket.socket] | None = None,
    on_ready: Callable[[], None] | None = None,
    *,
    middleware: Sequence[Middleware] | None = None,
    lifespan: Lifespan | None = None,
    config_path: Path | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM (or idle exit). Raises ConfigError before serving if the setup
    is unusable. ``config_path`` is re-read on SIGHUP (None: the default path, as at start)."""
    exposed: list[str] = []  # the network addresses served, known once the listeners are

    def load_checked(path: Path | None) -> Config:
        new = load_config(path)
        # a reload must not turn key checks off on a network address either
        check_exposure(new, exposed, _source_of(new, ""))
        return new

    reloader = Reloader(config, config_path, load=load_checked)
    service = ServiceManager(reloader)
    app = build_server_app(config, middleware=middleware, lifespan=lifespan, reload=service.reload)
    service.scheduler = app.state.scheduler
    service.traffic = app.state.traffic
    reloader.on_reload(lambda new: apply_config(app, new))
    activated = False
    if sockets is None:
        sockets = activation.activation_sockets()
        activated = bool(sockets)
    listeners = list(sockets) if sockets else [listen_socket(config)]
    exposed.extend(network_addresses(listeners))
    try:
        check_exposure(config, exposed, _source_of(config, ""))
    except ConfigError:
        for sock in listeners:
            sock.close()
        raise
    server = _Server(
        uvicorn.Config(
            app,
            log_config=None,
            access_log=config.debug > 0,
            lifespan="on",
            # drain_timeout 0 means no wait; None would mean forever
            timeout_graceful_shutdown=math.ceil(config.drain_timeout),
            server_header=False,
        ),
        on_ready,
        service,
    )
    activation.log_listening(listeners, activated)
    log.info("store", extra={"models": str(config.models)})
    await server.serve(sockets=listeners)
    if not server.started:
        # uvicorn has logged why (a lifespan failure); the caller only needs a non-zero exit
        raise LlmdError("startup failed; see the log above")
