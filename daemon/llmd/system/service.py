"""The daemon's life as a systemd service, around a running uvicorn server.

``server.py`` calls three hooks and nothing else:

    manager = ServiceManager(reloader, scheduler)
    ... manager.started(server)   once uvicorn accepts: READY=1, STATUS=, watchdog, SIGHUP, idle exit
    ... manager.drain(finish)     on the first SIGTERM/SIGINT: /ready 503, STOPPING=1, then
                                  ``finish(seconds left)`` once no request is in flight
    ... manager.stopping()        when shutdown begins: STOPPING=1, background tasks stopped

and passes ``manager.reload`` to D-Bus, so ``ReloadConfig`` and SIGHUP do the same thing.
``finish`` hands over to uvicorn: it stops accepting, waits for what is still open up to the
rest of config.drain_timeout, then the lifespan stops the runners.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from typing import Any, Protocol

from llmd.config import Config
from llmd.errors import LlmdError
from llmd.system import messages
from llmd.system.idle import Activity, IdleTracker
from llmd.system.notify import Notifier, ping_watchdog, status_line, watchdog_interval
from llmd.system.reload import Reloader
from llmd.system.traffic import Traffic

log = logging.getLogger(__name__)

TICK = 0.5  # seconds between looks at the status line and idleness


class Server(Protocol):
    """What we use of ``uvicorn.Server``."""

    should_exit: bool


class ServiceManager:
    def __init__(
        self,
        reloader: Reloader,
        scheduler: Any = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.reloader = reloader
        self.scheduler = scheduler
        self.notifier = notifier or Notifier()
        self.traffic = Traffic()  # serve() gives the app's
        self._server: Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._status = ""
        self._idle = IdleTracker(reloader.config.idle_exit)
        self._sighup = False
        self._stopping = False
        reloader.on_reload(self._reconfigured)

    @property
    def config(self) -> Config:
        return self.reloader.config

    def started(self, server: Server) -> None:
        """uvicorn is accepting: tell systemd, start the watchdog and housekeeping, catch SIGHUP."""
        self._server = server
        self._loop = loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            # signals can only be handled on the main thread's loop; elsewhere (tests) no reload
            loop.add_signal_handler(signal.SIGHUP, self._on_sighup)
            self._sighup = True
        self._status = status_line(self.scheduler)
        self.notifier.ready(self._status)
        log.info("ready", extra={"MESSAGE_ID": messages.READY, "STATUS": self._status})
        interval = watchdog_interval()
        if interval is not None:
            self._spawn(ping_watchdog(self.notifier, interval), "llmd-watchdog")
        self._spawn(self._housekeeping(), "llmd-housekeeping")

    def stopping(self, reason: str = "stopping") -> None:
        """Shutdown began: STOPPING=1 first, so systemd queues new activations for a successor."""
        if self._stopping:
            return
        self._stopping = True
        self.notifier.stopping(reason)
        log.info("stopping", extra={"MESSAGE_ID": messages.STOPPING, "REASON": reason})
        if self._sighup:
            with contextlib.suppress(RuntimeError):
                asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            self._sighup = False
        for task in self._tasks:
            task.cancel()
        self._tasks.clear()

    def drain(self, finish: Callable[[float], None]) -> None:
        """SIGTERM: report draining on /ready until the requests in flight are done (at most
        drain_timeout), then ``finish(seconds of drain_timeout left)``. Called from a signal
        handler, so it only schedules the work on the loop."""
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._drain, finish)

    def _drain(self, finish: Callable[[float], None]) -> None:
        self.traffic.phase = "draining"
        self.stopping("draining")
        self._spawn(self._drain_then(finish), "llmd-drain")

    async def _drain_then(self, finish: Callable[[float], None]) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.drain_timeout
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout_at(deadline):
                await self.traffic.quiet()
        finish(max(0.0, deadline - loop.time()))

    async def reload(self) -> Config:
        """RELOADING=1, re-read and apply the configuration, READY=1; ConfigError if invalid."""
        self.notifier.reloading()
        try:
            return await self.reloader.reload()
        finally:
            # READY=1 closes the reload in systemd either way: a refused file leaves us serving
            # on the previous configuration, not stuck in "reloading".
            self._status = status_line(self.scheduler)
            self.notifier.ready(self._status)

    # --- internals ---------------------------------------------------------------------------

    def _on_sighup(self) -> None:
        self._spawn(self._reload_logged(), "llmd-reload")

    async def _reload_logged(self) -> None:
        with contextlib.suppress(LlmdError):  # logged by the Reloader; the old config stays
            await self.reload()

    def _reconfigured(self, config: Config) -> None:
        self._idle.timeout = config.idle_exit

    def _activity(self) -> Activity:
        loaded = queued = 0
        if self.scheduler is not None:
            loaded = len(self.scheduler.running())
            queued = int(self.scheduler.queue_depth)
        # the app's count, not uvicorn's connections: probes on a keep-alive connection are not
        # activity
        return Activity(
            in_flight=self.traffic.in_flight,
            requests_seen=self.traffic.seen,
            loaded_models=loaded,
            queued=queued,
        )

    async def _housekeeping(self) -> None:
        # This task alone sends STATUS= and drives idle exit: a failing look at the scheduler
        # is logged (once per distinct failure) and the next tick tries again; it never ends it.
        failure = ""
        while True:
            await asyncio.sleep(min(TICK, self.config.idle_exit / 4 or TICK))
            try:
                status = status_line(self.scheduler)
                if status != self._status:
                    self._status = status
                    self.notifier.status(status)
                if self._idle.observe(self._activity()):
                    self._exit_idle()
                    return
                failure = ""
            except Exception as exc:
                if repr(exc) != failure:
                    failure = repr(exc)
                    log.exception("housekeeping failed; retrying", extra={"TASK": "llmd-housekeeping"})

    def _exit_idle(self) -> None:
        assert self._server is not None
        log.info("idle; exiting", extra={"IDLE_EXIT": self.config.idle_exit})
        self._tasks = [t for t in self._tasks if t is not asyncio.current_task()]
        self.stopping("idle; exiting")
        self._server.should_exit = True

    def _spawn(self, coro: Any, name: str) -> None:
        # Keep a reference: the loop holds tasks only weakly (python/cpython#91887).
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.append(task)
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[None]) -> None:
        with contextlib.suppress(ValueError):
            self._tasks.remove(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed", exc_info=task.exception(),
                      extra={"TASK": task.get_name()})
