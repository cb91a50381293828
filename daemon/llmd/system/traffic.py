"""The daemon's phase and the requests it is serving, probes left out.

``/ready`` reports the phase (starting until the app's lifespan has started, serving, draining
after SIGTERM); idle exit and the SIGTERM drain wait on the requests in flight. Probes
(``/health``, ``/ready``, ``/metrics``) are not traffic: a load balancer checking every second or a
Prometheus scraping must neither keep an idle daemon alive nor hold a drain open.
"""

from __future__ import annotations

import asyncio
from typing import Literal

from starlette.types import ASGIApp, Receive, Scope, Send

PROBES = frozenset({"/health", "/ready", "/metrics"})

Phase = Literal["starting", "serving", "draining"]


class Traffic:
    def __init__(self) -> None:
        self.phase: Phase = "starting"
        self.in_flight = 0
        self.seen = 0  # requests ever started: one that came and went between two looks counts
        self._quiet: asyncio.Event | None = None

    def begin(self) -> None:
        self.in_flight += 1
        self.seen += 1

    def end(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0 and self._quiet is not None:
            self._quiet.set()

    async def quiet(self) -> None:
        """Return once no request is in flight."""
        while self.in_flight:
            self._quiet = asyncio.Event()
            await self._quiet.wait()


class TrafficMiddleware:
    """Counts every HTTP request but the probes in ``traffic``."""

    def __init__(self, app: ASGIApp, traffic: Traffic) -> None:
        self.app = app
        self.traffic = traffic

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PROBES:
            await self.app(scope, receive, send)
            return
        self.traffic.begin()
        try:
            await self.app(scope, receive, send)
        finally:
            self.traffic.end()
