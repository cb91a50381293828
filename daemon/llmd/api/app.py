"""The Starlette application: routes from the API modules, one error table, state passed in.

Plugging in: an API module exposes ``routes: list[BaseRoute]`` and is listed in ROUTE_MODULES
(missing modules are skipped, so the app works while they are being written); middleware
(CORS, Host check) is passed to ``build_app``. Handlers read ``request.app.state.config``,
``.store`` and ``.scheduler``; nothing is a module global.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable, Sequence

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

import llmd
from llmd.api.errors import EXCEPTION_HANDLERS, OllamaJSONResponse
from llmd.config import Config
from llmd.store import Store

# Order matters only where paths overlap; none of these do.
ROUTE_MODULES: tuple[str, ...] = (
    "llmd.api.models",
    "llmd.api.inference",
    "llmd.api.openai",
    "llmd.api.responses",
    "llmd.api.anthropic",
    "llmd.api.registry",
)

Lifespan = Callable[[Starlette], contextlib.AbstractAsyncContextManager[Any]]


@dataclass(frozen=True, slots=True)
class AppState:
    """What the routes need, built by ``llmd.server`` (or a test) and handed to ``build_app``."""

    config: Config
    store: Store
    scheduler: Any = None  # llmd.scheduler.Scheduler once it exists; None serves the store alone
    keys: Any = None  # llmd.keys.KeyStore, read by the auth middleware and the bus


async def root(request: Request) -> Response:
    return PlainTextResponse("Ollama is running")


async def version(request: Request) -> Response:
    return OllamaJSONResponse({"version": llmd.__version__})


BASE_ROUTES: list[BaseRoute] = [
    Route("/", root, methods=["GET", "HEAD"]),
    Route("/api/version", version, methods=["GET", "HEAD"]),
]


def module_routes(names: Sequence[str] = ROUTE_MODULES) -> list[BaseRoute]:
    """The ``routes`` of each API module that is installed.

    ``find_spec`` decides presence, so an ImportError inside a module that exists still surfaces.
    """
    out: list[BaseRoute] = []
    for name in names:
        if importlib.util.find_spec(name) is None:
            continue
        out.extend(importlib.import_module(name).routes)
    return out


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
    set on ``app.state`` before it runs, so it may read it.
    """

    @contextlib.asynccontextmanager
    async def _lifespan(app: Starlette) -> AsyncIterator[None]:
        if lifespan is None:
            yield
            return
        async with lifespan(app):
            yield

    app = Starlette(
        routes=[*BASE_ROUTES, *module_routes(route_modules), *extra_routes],
        middleware=list(middleware),
        exception_handlers=dict(EXCEPTION_HANDLERS),
        lifespan=_lifespan,
    )
    app.state.llmd = state
    app.state.config = state.config
    app.state.store = state.store
    app.state.scheduler = state.scheduler
    app.state.keys = state.keys
    return app
