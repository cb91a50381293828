"""sd_notify messages over a real (fake-manager) NOTIFY_SOCKET, the watchdog interval, STATUS text."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from llmd.config import Config
from llmd.scheduler import Scheduler
from llmd.system.notify import Notifier, ping_watchdog, status_line, watchdog_interval
from system.activated import NotifyListener


@pytest.fixture
def manager(monkeypatch: pytest.MonkeyPatch) -> Iterator[NotifyListener]:
    listener = NotifyListener()
    monkeypatch.setenv("NOTIFY_SOCKET", listener.path)
    yield listener
    listener.close()


def test_notifier_sends_ready_status_reloading_and_stopping(manager: NotifyListener) -> None:
    notifier = Notifier()
    notifier.ready("serving")
    assert manager.next(5) == "READY=1\nSTATUS=serving"
    notifier.status("serving; 1 model loaded; 0 queued")
    assert manager.next(5) == "STATUS=serving; 1 model loaded; 0 queued"
    notifier.reloading()
    lines = manager.next(5).split("\n")
    assert lines[0] == "RELOADING=1"
    usec = int(lines[1].removeprefix("MONOTONIC_USEC="))
    assert 0 < usec <= time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    notifier.stopping()
    assert manager.next(5) == "STOPPING=1\nSTATUS=stopping"


def test_notifier_is_silent_without_a_notify_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    Notifier().ready("serving")  # no error, nothing to send to


def test_a_manager_that_stops_reading_never_blocks_the_daemon(manager: NotifyListener) -> None:
    # In a child process: a blocking send holds the GIL, which would hang this test process too.
    # 50 messages overrun the socket's queue (net.unix.max_dgram_qlen, 10 by default).
    code = ("from llmd.system.notify import Notifier\n"
            "n = Notifier()\n"
            "for i in range(50): n.status(f'serving; {i} queued')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-c", code], env=env, timeout=30, capture_output=True)
    assert done.returncode == 0, done.stderr
    assert manager.next(5) == "STATUS=serving; 0 queued"  # the first ones still arrive, in order


async def test_watchdog_pings_repeatedly_from_the_event_loop(manager: NotifyListener) -> None:
    task = asyncio.create_task(ping_watchdog(Notifier(), 0.01))
    try:
        got = [await asyncio.to_thread(manager.next, 5) for _ in range(3)]
    finally:
        task.cancel()
    assert got == ["WATCHDOG=1"] * 3


@pytest.mark.parametrize(("env", "expected"), [
    ({}, None),
    ({"WATCHDOG_USEC": "60000000"}, 30.0),
    ({"WATCHDOG_USEC": "200000", "WATCHDOG_PID": "{me}"}, 0.1),
    ({"WATCHDOG_USEC": "200000", "WATCHDOG_PID": "1"}, None),
    ({"WATCHDOG_USEC": "0"}, None),
    ({"WATCHDOG_USEC": "soon"}, None),
])
def test_watchdog_is_armed_at_half_the_interval_only_for_us(env: dict[str, str], expected: float | None) -> None:
    env = {k: v.format(me=os.getpid()) for k, v in env.items()}
    assert watchdog_interval(env) == expected


def test_status_line_counts_loaded_models_and_queued_requests() -> None:
    assert status_line(None) == "serving"
    assert status_line(Scheduler(Config())) == "serving; 0 models loaded; 0 queued"


class _FlakyScheduler:
    """The scheduler seam of ServiceManager: looks at it fail six times, then work.

    The real trigger (a keep_alive that overflowed datetime in ``running()``) is refused at the
    edge now; any other bug in that look must not end the task either.
    """

    def __init__(self) -> None:
        self.failures = 6  # status_line's own look is guarded; the idle check's was not
        self.queue_depth = 0

    def running(self) -> list[object]:
        if self.failures:
            self.failures -= 1
            raise OverflowError("date value out of range")
        return []


class _ServerState:
    connections: set[object] = set()
    total_requests = 0


class _Server:
    should_exit = False
    server_state = _ServerState()


async def test_housekeeping_survives_a_failing_look_at_the_scheduler_and_still_exits_when_idle(
    manager: NotifyListener,
) -> None:
    from llmd.system.reload import Reloader
    from llmd.system.service import ServiceManager

    scheduler = _FlakyScheduler()
    service = ServiceManager(Reloader(Config(idle_exit=0.2), None), scheduler, Notifier())
    server = _Server()
    service.started(server)
    try:
        async with asyncio.timeout(30):
            while not server.should_exit:
                await asyncio.sleep(0.05)
    finally:
        service.stopping()
    assert scheduler.failures == 0
