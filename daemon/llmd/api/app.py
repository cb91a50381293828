"""The Starlette application: routes from the API modules, one error table, state passed in.

Plugging in: an API module exposes ``routes: list[BaseRoute]`` and is listed in ROUTE_MODULES;
middleware (CORS, Host check) is passed to ``build_app``. Handlers read
``request.app.state.config``, ``.store``, ``.scheduler``, ``.metrics`` and ``.traffic``; nothing is
a module global.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, Sequence

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

import llmd
from llmd.api.errors import EXCEPTION_HANDLERS, OllamaJSONResponse
from llmd.api.probes import MetricsMiddleware
from llmd.config import Config
from llmd.metrics import Metrics
from llmd.store import Store
from llmd.system.traffic import Traffic, TrafficMiddleware

if TYPE_CHECKING:
    from llmd.scheduler import Scheduler

# Order matters only where paths overlap; none of these do.
ROUTE_MODULES: tuple[str, ...] = (
    "llmd.api.models",
    "llmd.api.inference",
    "llmd.api.openai",
    "llmd.api.responses",
    "llmd.api.anthropic",
    "llmd.api.registry",
    "llmd.api.openapi",
    "llmd.api.probes",
)

Lifespan = Callable[[Starlette], contextlib.AbstractAsyncContextManager[Any]]


@dataclass(frozen=True, slots=True)
class AppState:
    """What the routes need, built by ``llmd.server`` (or a test) and handed to ``build_app``."""

    config: Config
    store: Store
    scheduler: Scheduler | None = None  # None serves the store alone (the routes' own tests)
    keys: Any = None  # llmd.keys.KeyStore, read by the auth middleware and the bus
    metrics: Metrics | None = None  # None: the scheduler's, else a fresh one
    traffic: Traffic = field(default_factory=Traffic)
    # why this host must not take traffic beyond its phase and queue (None: nothing), for /ready
    not_ready: Callable[[], str | None] = lambda: None


async def root(request: Request) -> Response:
    return PlainTextResponse("Ollama is running")


async def version(request: Request) -> Response:
    return OllamaJSONResponse({"version": llmd.__version__})


BASE_ROUTES: list[BaseRoute] = [
    Route("/", root, methods=["GET", "HEAD"]),
    Route("/api/version", version, methods=["GET", "HEAD"]),
]


def module_routes(names: Sequence[str] = ROUTE_MODULES) -> list[BaseRoute]:
    """The ``routes`` of each named API module, in order."""
    return [route for name in names for route in importlib.import_module(name).routes]


def build_app(
    state: AppState,
    extra_routes: Sequence[BaseRoute] = (),
    *,
    middleware: Sequence[Middleware] = (),
    lifespan: Lifespan | None = None,
    route_modules: Sequence[str] = ROUTE_MODULES,
) -> Starlette:
    """The ASGI app serving ``state``.

    ``lifespan`` wraps the app's life (start the scheduler, stop runners on shutdown); state is
    set on ``app.state`` before it runs, so it may read it. Once it has started, /ready says so.
    """
    if state.metrics is not None:
        metrics = state.metrics
    elif state.scheduler is not None:
        metrics = state.scheduler.metrics
    else:
        metrics = Metrics(state.config.metrics)
    state = dataclasses.replace(state, metrics=metrics)
    metrics.in_flight = lambda: state.traffic.in_flight

    @contextlib.asynccontextmanager
    async def _lifespan(app: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            if lifespan is not None:
                await stack.enter_async_context(lifespan(app))
            state.traffic.phase = "serving"
            yield

    observed = [
        Middleware(TrafficMiddleware, traffic=state.traffic),
        Middleware(MetricsMiddleware, metrics=metrics),
    ]
    app = Starlette(
        routes=[*BASE_ROUTES, *module_routes(route_modules), *extra_routes],
        middleware=[*observed, *middleware],
        exception_handlers=dict(EXCEPTION_HANDLERS),
        lifespan=_lifespan,
    )
    app.state.llmd = state
    app.state.config = state.config
    app.state.store = state.store
    app.state.scheduler = state.scheduler
    app.state.keys = state.keys
    app.state.metrics = metrics
    app.state.traffic = state.traffic
    return app
