"""sd_notify(3) messages to the service manager, and the watchdog's ping interval.

Every function is a no-op without ``$NOTIFY_SOCKET`` (started by hand, in tests), so callers never
check. ``llmd.service`` is ``Type=notify``, which implies ``NotifyAccess=main``: only this process
may notify; runner processes must not.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping
from typing import Any

log = logging.getLogger(__name__)

Send = Callable[[str], Any]


def _sd_notify(message: str) -> bool:
    """sd_notify(3) that never waits: libsystemd's blocks while the manager's datagram queue is
    full (net.unix.max_dgram_qlen, 10 by default), holding the GIL, which froze the whole daemon
    when a manager stopped reading. A status line dropped then is harmless."""
    # a protocol variable systemd sets for this process, not a setting: read here
    path = os.environ.get("NOTIFY_SOCKET", "")
    if not path:
        return False
    address = "\0" + path[1:] if path.startswith("@") else path  # "@" is the abstract namespace
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        sock.sendto(message.encode(), socket.MSG_DONTWAIT | socket.MSG_NOSIGNAL, address)
    return True


class Notifier:
    """The messages llmd sends; ``send`` is the seam (a non-blocking sd_notify by default)."""

    def __init__(self, send: Send = _sd_notify) -> None:
        self._send = send

    def _notify(self, *lines: str) -> None:
        try:
            self._send("\n".join(lines))
        except OSError as exc:  # a vanished manager must not take the daemon down
            log.debug("sd_notify failed", extra={"ERROR": str(exc)})

    def ready(self, status: str) -> None:
        self._notify("READY=1", f"STATUS={status}")

    def status(self, status: str) -> None:
        self._notify(f"STATUS={status}")

    def reloading(self) -> None:
        # MONOTONIC_USEC lets systemd ≥253 match this RELOADING=1 to the reload it requested;
        # older managers ignore it.
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self._notify("RELOADING=1", f"MONOTONIC_USEC={usec}", "STATUS=reloading configuration")

    def stopping(self, status: str = "stopping") -> None:
        self._notify("STOPPING=1", f"STATUS={status}")

    def watchdog(self) -> None:
        self._notify("WATCHDOG=1")


def watchdog_interval(environ: Mapping[str, str] | None = None, pid: int | None = None) -> float | None:
    """Seconds between pings (half of ``$WATCHDOG_USEC``), or None when no watchdog is armed.

    As sd_watchdog_enabled(3): armed when WATCHDOG_USEC is set and WATCHDOG_PID is unset or is us.
    """
    # Protocol variables systemd sets for this process, not settings: read here, not in config.py.
    env = os.environ if environ is None else environ
    usec_text = env.get("WATCHDOG_USEC", "")
    if not usec_text.isdigit() or int(usec_text) == 0:
        return None
    owner = env.get("WATCHDOG_PID", "")
    if owner and owner != str(os.getpid() if pid is None else pid):
        return None
    return int(usec_text) / 2 / 1_000_000


async def ping_watchdog(notifier: Notifier, interval: float) -> None:
    """Ping forever from the event loop itself, so a wedged loop stops the pings and systemd
    restarts us (WatchdogSec= plus Restart=on-failure)."""
    while True:
        notifier.watchdog()
        await asyncio.sleep(interval)


def status_line(scheduler: Any, state: str = "serving") -> str:
    """``serving; 1 model loaded; 0 queued`` (just ``serving`` without a scheduler)."""
    if scheduler is None:
        return state
    try:
        loaded = len(scheduler.running())
        queued = int(scheduler.queue_depth)
    except Exception:  # a status line is never worth a crash
        log.debug("scheduler state unavailable for STATUS=", exc_info=True)
        return state
    models = "model" if loaded == 1 else "models"
    return f"{state}; {loaded} {models} loaded; {queued} queued"
