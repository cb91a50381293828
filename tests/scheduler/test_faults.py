"""The scheduler under faults: a load that must wait holds up no one else and has a deadline,
a cancelled load leaves nothing behind, and a reload keeps the memory budget honest."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest
from llmd import memory
from llmd.config import Config
from llmd.errors import LoadTimeout
from llmd.runner.request import LoadOptions
from llmd.scheduler import Scheduler

pytestmark = pytest.mark.model

MIB = 1024 * 1024
# One slot each and no prompt cache (CONFIG): llmd would otherwise size both to the budget.
SMALL = LoadOptions(num_ctx=512, num_parallel=1)  # estimated at 283 MiB
WIDE = LoadOptions(num_ctx=8192, num_parallel=1)  # estimated at 587 MiB
# Two SMALL runners fit; a busy SMALL one and a WIDE one do not.
BUDGET = 600 * MIB
CONFIG = Config(max_memory=BUDGET, prompt_cache=0)
SAFETY = 60.0  # seconds: a bound against hangs, never an assertion about speed


def names(scheduler: Scheduler) -> set[str]:
    return {r.model.name.short for r in scheduler.running()}


async def until(condition, what: str) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(SAFETY):
        while not condition():
            await asyncio.sleep(0.02)


async def test_a_load_waiting_for_a_busy_model_does_not_block_loads_that_fit(make_model) -> None:  # type: ignore[no-untyped-def]
    scheduler = Scheduler(CONFIG)
    busy, wide, small = make_model("busy:latest"), make_model("wide:latest"), make_model("small:latest")
    try:
        async with scheduler.acquire(busy, SMALL, None):
            waiting = asyncio.create_task(scheduler.load(wide, WIDE, None))
            await until(lambda: scheduler.queue_depth == 1, "the wide load to wait for room")
            # small fits beside busy: it loads now, not after busy's request ends
            async with asyncio.timeout(SAFETY):
                await scheduler.load(small, SMALL, None)
            assert names(scheduler) == {"busy:latest", "small:latest"}
            assert not waiting.done()
        async with asyncio.timeout(SAFETY):
            await waiting  # busy went idle: both idle ones are evicted for wide
        assert names(scheduler) == {"wide:latest"}
    finally:
        await scheduler.close()


async def test_waiting_for_room_ends_at_the_load_deadline(make_model) -> None:  # type: ignore[no-untyped-def]
    config = CONFIG
    scheduler = Scheduler(config)
    busy, wide = make_model("busy:latest"), make_model("wide:latest")
    try:
        async with scheduler.acquire(busy, SMALL, None):
            scheduler.reconfigure(dataclasses.replace(config, load_timeout=1.0))
            with pytest.raises(LoadTimeout, match="timed out waiting for busy models to make room for wide:latest"):
                async with asyncio.timeout(SAFETY):
                    await scheduler.load(wide, WIDE, None)
            assert scheduler.queue_depth == 0
            assert names(scheduler) == {"busy:latest"}
    finally:
        await scheduler.close()


def _children() -> set[int]:
    found: set[int] = set()
    for task in Path("/proc/self/task").iterdir():
        found.update(int(p) for p in (task / "children").read_text().split())
    return found


async def test_a_request_cancelled_while_its_model_loads_leaves_no_runner(make_model) -> None:  # type: ignore[no-untyped-def]
    scheduler = Scheduler(CONFIG)
    before = _children()
    try:
        task = asyncio.create_task(scheduler.load(make_model("slow:latest"), SMALL, None))
        await until(lambda: bool(_children() - before), "the runner process to start")
        [pid] = _children() - before
        assert not task.done()  # still loading
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert scheduler.running() == []
        assert scheduler.queue_depth == 0
        assert not Path(f"/proc/{pid}").exists()  # killed and reaped
    finally:
        await scheduler.close()


async def test_a_reload_does_not_count_resident_models_twice(
    make_model, monkeypatch: pytest.MonkeyPatch  # type: ignore[no-untyped-def]
) -> None:
    # The kernel's MemAvailable excludes what our runners hold; modelled here, since how much
    # memory this machine has free cannot be set by a test.
    total = 4096 * MIB
    scheduler = Scheduler(Config(memory_fraction=0.5))
    monkeypatch.setattr(memory, "cgroup_available", lambda: None)
    monkeypatch.setattr(
        memory, "_meminfo_available",
        lambda: total - sum(r.size for r in scheduler._runners.values()),
    )
    try:
        await scheduler.start()
        before = scheduler.memory_budget
        await scheduler.load(make_model("a:latest"), SMALL, None)
        scheduler.reconfigure(Config(memory_fraction=0.5))  # what `systemctl reload` does
        assert scheduler.memory_budget == before
    finally:
        await scheduler.close()
