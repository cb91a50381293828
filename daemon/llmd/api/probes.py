"""What monitoring asks: ``/health`` (liveness), ``/ready`` (readiness), ``/metrics`` (Prometheus),
and the middleware that records every other request in ``llmd_requests_total``.

None of the three loads a model, counts as traffic for idle exit or the drain
(``llmd.system.traffic``), or is logged at INFO.
"""

from __future__ import annotations

import time

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from llmd import metrics as m
from llmd.errors import InvalidModelName
from llmd.store import ModelName
from llmd.system import requestlog
from llmd.system.traffic import PROBES


async def health(request: Request) -> Response:
    """200 while the event loop answers: whatever else is wrong, a restart would not fix it."""
    return JSONResponse({"status": "ok"})


async def ready(request: Request) -> Response:
    """200 when a request sent now would be taken; 503 while starting, draining, full, or short
    of a declared model."""
    state = request.app.state.llmd
    if state.traffic.phase != "serving":
        return JSONResponse({"status": state.traffic.phase}, status_code=503)
    scheduler = state.scheduler
    if scheduler is not None and scheduler.queue_depth >= request.app.state.config.max_queue:
        return JSONResponse({"status": "queue full"}, status_code=503)
    waiting_for = state.not_ready()  # the models llmd.yaml declares: pulled, pinned, preloaded
    if waiting_for is not None:
        return JSONResponse({"status": "models", "detail": waiting_for}, status_code=503)
    return JSONResponse({"status": "ready"})


async def metrics(request: Request) -> Response:
    if not request.app.state.config.metrics:
        raise HTTPException(404)  # as if there were no such route
    return Response(request.app.state.metrics.exposition(), media_type=m.CONTENT_TYPE)


routes: list[BaseRoute] = [
    Route("/health", health, methods=["GET", "HEAD"]),
    Route("/ready", ready, methods=["GET", "HEAD"]),
    Route("/metrics", metrics, methods=["GET"]),
]


def _model(scope: Scope) -> str:
    name = scope.get("state", {}).get(requestlog.MODEL)
    if not name:
        return ""
    try:
        return ModelName.parse(name).short  # one label value however the client spelled it
    except InvalidModelName:
        return ""


class MetricsMiddleware:
    """Route template, model, status class and duration of each request but the probes."""

    def __init__(self, app: ASGIApp, metrics: m.Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.metrics.enabled or scope["path"] in PROBES:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = requestlog.SentStatus(send)
        try:
            await status.serve(self.app, scope, receive)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.request(route, _model(scope), status.code, time.perf_counter() - started)
