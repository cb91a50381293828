"""When an idle daemon should exit (``idle_exit``), as libvirtd --timeout and cupsd -l do.

Exiting is safe under socket activation: systemd keeps the listening socket (Accept=no,
FlushPending=no), so a connection that arrives while no llmd runs waits in its backlog and is
served by the instance systemd starts for it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Activity:
    """One look at what keeps the daemon busy."""

    in_flight: int       # HTTP requests being served, probes left out (llmd.system.traffic)
    requests_seen: int   # requests ever started, probes left out: catches short ones
    loaded_models: int
    queued: int

    @property
    def busy(self) -> bool:
        return bool(self.in_flight or self.loaded_models or self.queued)


class IdleTracker:
    """``observe()`` each tick; True once nothing has happened for ``timeout`` seconds."""

    def __init__(self, timeout: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.timeout = timeout
        self._clock = clock
        self._since = clock()
        self._requests_seen = -1

    def observe(self, activity: Activity) -> bool:
        now = self._clock()
        if activity.busy or activity.requests_seen != self._requests_seen:
            # A request that began and ended between two looks still counts as activity.
            self._requests_seen = activity.requests_seen
            self._since = now
            return False
        return self.timeout > 0 and now - self._since >= self.timeout

    @property
    def idle_for(self) -> float:
        return self._clock() - self._since
