"""A runner that crashes on every load or first decode is respawned at most CRASH_LOOP_LIMIT times.

The runners are real; LLMD_RUNNER_FAULT (the runner's test hook) makes one model's runner kill
itself with SIGSEGV, as llama.cpp's AMX kernels did on Sapphire Rapids hosts, while another model
served from the same GGUF keeps working.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from llmd.config import Config
from llmd.errors import ModelCoolingDown, RunnerCrashed, RunnerLoadFailed
from llmd.runner.handle import spawn_runner
from llmd.runner.request import (
    CompletionRequest,
    LoadOptions,
    SamplingOptions,
    TextDelta,
)
from llmd.scheduler import COOLDOWN_FIRST, CRASH_LOOP_LIMIT, Scheduler

pytestmark = pytest.mark.model

SMALL = LoadOptions(num_ctx=256)
REQUEST = CompletionRequest(
    "<|im_start|>user\nSay hello.<|im_end|>\n<|im_start|>assistant\n",
    SamplingOptions(temperature=0, num_predict=4),
)


class Spawner:
    """spawn_runner, counting spawns, with the fault set for runners of ``faulty`` only."""

    def __init__(self, faulty: Path, point: str) -> None:
        self.faulty = faulty
        self.point = point
        self.spawned: list[Path] = []

    async def __call__(self, path: Path, load: LoadOptions, config: Config):  # type: ignore[no-untyped-def]
        self.spawned.append(path)
        if path == self.faulty:
            # spawn_runner copies the environment before its first await, and loads are
            # serialised by the scheduler, so no other runner sees the variable.
            os.environ["LLMD_RUNNER_FAULT"] = self.point
        try:
            return await spawn_runner(path, load, config)
        finally:
            os.environ.pop("LLMD_RUNNER_FAULT", None)

    def count(self, path: Path) -> int:
        return self.spawned.count(path)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def answer(scheduler: Scheduler, model, load: LoadOptions = SMALL) -> str:  # type: ignore[no-untyped-def]
    text = ""
    async with scheduler.acquire(model, load, None) as lease:
        async for event in lease.generate(REQUEST):
            if isinstance(event, TextDelta):
                text += event.text
    return text


@pytest.fixture
def bad_path(tmp_path: Path, gguf_path: Path) -> Path:
    path = tmp_path / "bad.gguf"
    path.symlink_to(gguf_path)
    return path


async def test_a_runner_crashing_at_every_first_decode_is_spawned_three_times_then_cools_down(
    make_model, bad_path: Path
) -> None:  # type: ignore[no-untyped-def]
    spawner = Spawner(bad_path, "decode")
    clock = Clock()
    scheduler = Scheduler(Config(), spawn=spawner, clock=clock)
    bad, good = make_model("bad:latest", bad_path), make_model("good:latest")
    try:
        for _ in range(CRASH_LOOP_LIMIT):
            with pytest.raises(RunnerCrashed, match="signal: segmentation fault"):
                await answer(scheduler, bad)
        for _ in range(3):
            with pytest.raises(ModelCoolingDown) as cooling:
                await answer(scheduler, bad)
        assert spawner.count(bad_path) == CRASH_LOOP_LIMIT
        assert cooling.value.retry_after == COOLDOWN_FIRST
        assert "segmentation fault" in cooling.value.message
        assert "journalctl -u llmd" in cooling.value.message

        # Other models keep serving meanwhile.
        assert await answer(scheduler, good)
        [failed] = scheduler.failed()
        assert (failed.name, failed.failures) == ("bad:latest", CRASH_LOOP_LIMIT)
        assert failed.status == "signal: segmentation fault" and failed.retry_at is not None

        # After the cool-down one more runner is tried; its crash doubles the cool-down.
        clock.now += COOLDOWN_FIRST + 1
        with pytest.raises(RunnerCrashed):
            await answer(scheduler, bad)
        with pytest.raises(ModelCoolingDown) as cooling:
            await answer(scheduler, bad)
        assert cooling.value.retry_after == 2 * COOLDOWN_FIRST
        assert spawner.count(bad_path) == CRASH_LOOP_LIMIT + 1

        # An explicit load (llmctl load) retries at once.
        await scheduler.load(bad, SMALL, None, retry_now=True)
        assert spawner.count(bad_path) == CRASH_LOOP_LIMIT + 2
    finally:
        await scheduler.close()


async def test_a_runner_dying_while_loading_cools_down_and_a_good_answer_clears_the_record(
    make_model, bad_path: Path
) -> None:  # type: ignore[no-untyped-def]
    spawner = Spawner(bad_path, "load")
    clock = Clock()
    scheduler = Scheduler(Config(), spawn=spawner, clock=clock)
    bad = make_model("bad:latest", bad_path)
    try:
        for _ in range(CRASH_LOOP_LIMIT):
            with pytest.raises(RunnerLoadFailed) as failed:
                await answer(scheduler, bad)
            assert failed.value.exit_status == "signal: segmentation fault"
        with pytest.raises(ModelCoolingDown):
            await answer(scheduler, bad)
        assert spawner.count(bad_path) == CRASH_LOOP_LIMIT

        # The host is fixed (the fault is gone): after the cool-down it serves, and the
        # record of failures is cleared by its first answer.
        spawner.faulty = Path("/nonexistent")
        clock.now += COOLDOWN_FIRST + 1
        assert await answer(scheduler, bad)
        assert scheduler.failed() == []
    finally:
        await scheduler.close()


async def test_a_runner_that_served_and_then_crashed_is_respawned_without_cooling_down(
    make_model, bad_path: Path
) -> None:  # type: ignore[no-untyped-def]
    spawner = Spawner(Path("/nonexistent"), "decode")
    scheduler = Scheduler(Config(), spawn=spawner)
    model = make_model("flaky:latest", bad_path)
    try:
        for _ in range(CRASH_LOOP_LIMIT + 1):
            assert await answer(scheduler, model)
            [running] = scheduler.running()
            assert running.cpu is not None and running.cpu.variant
            os.kill(_pid(scheduler), 9)
            await _gone(scheduler)
        assert await answer(scheduler, model)
        assert scheduler.failed() == []
    finally:
        await scheduler.close()


def _pid(scheduler: Scheduler) -> int:
    [runner] = scheduler._runners.values()
    return runner.handle.pid


async def _gone(scheduler: Scheduler) -> None:
    async with asyncio.timeout(30):
        while scheduler.running():
            await asyncio.sleep(0.02)
