"""The scheduler with real runner processes: residency, keep_alive, eviction, queue, crashes."""

from __future__ import annotations

import asyncio
import math
import os
import signal
import socket
from pathlib import Path

import pytest
from llmd.config import Config
from llmd.errors import (
    InsufficientMemory,
    QueueFull,
    RunnerCrashed,
    RunnerError,
    RunnerLoadFailed,
)
from llmd.runner.request import (
    Completed,
    CompletionRequest,
    LoadOptions,
    SamplingOptions,
    TextDelta,
)
from llmd.scheduler import Lease, Scheduler

pytestmark = pytest.mark.model

SMALL = LoadOptions(num_ctx=512)
MIB = 1024 * 1024
# Each SmolLM2 runner below is estimated at under 300 MiB: this budget holds one, not two.
ONE_MODEL = 450 * MIB
SAFETY = 60.0  # seconds: a bound against hangs, never an assertion about speed


def chat(text: str) -> str:
    return f"<|im_start|>user\n{text}<|im_end|>\n<|im_start|>assistant\n"


async def generate(
    lease: Lease, prompt: str, num_predict: int = 8
) -> tuple[str, Completed]:
    text = ""
    request = CompletionRequest(
        chat(prompt), SamplingOptions(temperature=0, num_predict=num_predict)
    )
    async for event in lease.generate(request):
        if isinstance(event, TextDelta):
            text += event.text
        else:
            return text, event
    raise AssertionError("no Completed event")


async def until(condition, what: str) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(SAFETY):
        while not condition():
            await asyncio.sleep(0.05)


def names(scheduler: Scheduler) -> set[str]:
    return {r.model.name.short for r in scheduler.running()}


async def test_a_request_loads_its_model_once_and_reuses_it(make_model) -> None:  # type: ignore[no-untyped-def]
    scheduler = Scheduler(Config(max_memory=ONE_MODEL))
    await scheduler.start()
    model = make_model("smollm2:135m")
    try:
        async with scheduler.acquire(model, SMALL, None) as lease:
            assert lease.load_duration > 0
            text, done = await generate(lease, "Say hello.")
            assert text and done.eval_count > 0
            [running] = scheduler.running()
            assert running.in_flight == 1
            assert running.context_length == 512
            assert 0 < running.size <= ONE_MODEL
            assert running.expires_at is not None
        async with scheduler.acquire(model, SMALL, None) as again:
            assert again.load_duration == 0
            assert again.runner_pid == lease.runner_pid
            assert (
                await again.detokenize(await again.tokenize("hi there")) == "hi there"
            )
        assert scheduler.running()[0].in_flight == 0
    finally:
        await scheduler.close()
    assert scheduler.running() == []


async def test_changed_load_options_reload_the_model(make_model) -> None:  # type: ignore[no-untyped-def]
    scheduler = Scheduler(Config(max_memory=ONE_MODEL))
    model = make_model("smollm2:135m")
    try:
        async with scheduler.acquire(model, SMALL, None) as first:
            pid = first.runner_pid
        async with scheduler.acquire(model, LoadOptions(num_ctx=1024), None) as second:
            assert second.runner_pid != pid
            assert second.load_duration > 0
        assert [r.context_length for r in scheduler.running()] == [1024]
    finally:
        await scheduler.close()


async def test_an_idle_model_is_evicted_to_make_room_and_a_busy_one_never_is(
    make_model,
) -> None:  # type: ignore[no-untyped-def]
    scheduler = Scheduler(Config(max_memory=ONE_MODEL))
    small, large = make_model("small:latest"), make_model("large:latest")
    wide = LoadOptions(num_ctx=1024)
    try:
        await scheduler.load(small, SMALL, None)
        assert names(scheduler) == {"small:latest"}
        async with scheduler.acquire(large, wide, None) as lease:
            # small was idle: evicted for large.
            assert names(scheduler) == {"large:latest"}
            waiting = asyncio.create_task(scheduler.load(small, SMALL, None))
            await until(lambda: scheduler.queue_depth == 1, "the small load to queue")
            text, _ = await generate(lease, "Name a colour.")
            assert text
            # large is busy: it stays, and small waits rather than evicting it.
            assert names(scheduler) == {"large:latest"}
            assert not waiting.done()
        async with asyncio.timeout(SAFETY):
            await waiting
        assert names(scheduler) == {"small:latest"}
    finally:
        await scheduler.close()


async def test_max_loaded_models_evicts_the_least_recently_used(make_model) -> None:  # type: ignore[no-untyped-def]
    scheduler = Scheduler(Config(max_memory=4 * ONE_MODEL, max_loaded_models=2))
    a, b, c = make_model("a:latest"), make_model("b:latest"), make_model("c:latest")
    try:
        await scheduler.load(a, SMALL, None)
        await scheduler.load(b, SMALL, None)
        async with scheduler.acquire(a, SMALL, None):
            pass  # a is now the more recently used
        await scheduler.load(c, SMALL, None)
        assert names(scheduler) == {"a:latest", "c:latest"}
    finally:
        await scheduler.close()


async def test_a_model_that_cannot_fit_even_alone_is_insufficient_memory(
    make_model,
) -> None:  # type: ignore[no-untyped-def]
    scheduler = Scheduler(Config(max_memory=64 * MIB))
    with pytest.raises(
        InsufficientMemory,
        match=r"model requires more system memory \(.+\) than is available \(64.0 MiB\)",
    ):
        async with scheduler.acquire(make_model("smollm2:135m"), SMALL, None):
            pass
    assert scheduler.running() == []
    assert scheduler.queue_depth == 0


async def test_keep_alive_zero_unloads_right_after_the_request(make_model) -> None:  # type: ignore[no-untyped-def]
    scheduler = Scheduler(Config(max_memory=ONE_MODEL))
    try:
        async with scheduler.acquire(make_model("smollm2:135m"), SMALL, 0) as lease:
            await generate(lease, "Hi")
            assert names(scheduler) == {"smollm2:135m"}
        await until(lambda: not scheduler.running(), "the unload")
    finally:
        await scheduler.close()


async def test_keep_alive_expiry_unloads_an_idle_model_and_forever_never_expires(
    make_model,
) -> None:  # type: ignore[no-untyped-def]
    scheduler = Scheduler(Config(max_memory=4 * ONE_MODEL, keep_alive=0.3))
    brief, kept = make_model("brief:latest"), make_model("kept:latest")
    try:
        await scheduler.load(kept, SMALL, math.inf)
        await scheduler.load(brief, SMALL, None)  # the config default: 0.3 s
        [kept_running] = [r for r in scheduler.running() if r.model == kept]
        assert kept_running.expires_at is None
        await until(lambda: names(scheduler) == {"kept:latest"}, "brief to expire")
        # A request without keep_alive keeps the runner's own duration: still forever.
        async with scheduler.acquire(kept, SMALL, None):
            pass
        assert scheduler.running()[0].expires_at is None
    finally:
        await scheduler.close()


async def test_requests_beyond_max_queue_get_queue_full(make_model) -> None:  # type: ignore[no-untyped-def]
    scheduler = Scheduler(Config(max_memory=ONE_MODEL, max_queue=1))
    model = make_model("smollm2:135m")
    try:
        async with scheduler.acquire(model, SMALL, None):
            second_in = asyncio.Event()

            async def second() -> None:
                async with scheduler.acquire(model, SMALL, None):
                    second_in.set()

            waiter = asyncio.create_task(second())
            await until(
                lambda: scheduler.queue_depth == 1, "the second request to queue"
            )
            with pytest.raises(
                QueueFull,
                match="server busy, please try again.  maximum pending requests exceeded",
            ):
                async with scheduler.acquire(model, SMALL, None):
                    pass
            assert not second_in.is_set()
        async with asyncio.timeout(SAFETY):
            await waiter
        assert second_in.is_set()
    finally:
        await scheduler.close()


async def test_a_cancelled_waiter_gives_its_place_up(make_model) -> None:  # type: ignore[no-untyped-def]
    scheduler = Scheduler(Config(max_memory=ONE_MODEL))
    model = make_model("smollm2:135m")
    try:
        async with scheduler.acquire(model, SMALL, None):

            async def wait_for_slot() -> None:
                async with scheduler.acquire(model, SMALL, None):
                    pass

            waiter = asyncio.create_task(wait_for_slot())
            await until(lambda: scheduler.queue_depth == 1, "the waiter to queue")
            waiter.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiter
            assert scheduler.queue_depth == 0
        async with asyncio.timeout(SAFETY):
            async with scheduler.acquire(model, SMALL, None) as lease:
                assert lease.load_duration == 0
    finally:
        await scheduler.close()


async def test_a_runner_killed_mid_stream_fails_its_requests_and_the_next_request_reloads(
    make_model,  # type: ignore[no-untyped-def]
) -> None:
    scheduler = Scheduler(Config(max_memory=ONE_MODEL))
    model = make_model("smollm2:135m")
    parallel = LoadOptions(num_ctx=512, num_parallel=2)

    async def doomed(started: asyncio.Event) -> None:
        async with scheduler.acquire(model, parallel, None) as lease:
            request = CompletionRequest(
                chat("Count to a thousand."), SamplingOptions(temperature=0)
            )
            async for _ in lease.generate(request):
                started.set()

    try:
        started = [asyncio.Event(), asyncio.Event()]
        tasks = [asyncio.create_task(doomed(e)) for e in started]
        async with asyncio.timeout(SAFETY):
            for event in started:
                await event.wait()
        [pid] = {lease_pid for lease_pid in _runner_pids(scheduler)}
        os.kill(pid, signal.SIGKILL)
        for task in tasks:
            with pytest.raises(
                RunnerCrashed,
                match="llama runner process has terminated: signal: killed",
            ):
                async with asyncio.timeout(SAFETY):
                    await task
        await until(
            lambda: not scheduler.running(), "the scheduler to forget the runner"
        )
        async with scheduler.acquire(model, parallel, None) as lease:
            assert lease.runner_pid != pid
            assert lease.load_duration > 0
            text, _ = await generate(lease, "Say hi.")
            assert text
    finally:
        await scheduler.close()


async def test_a_corrupt_model_file_is_a_load_error_and_nothing_stays_loaded(
    make_model,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    bad = tmp_path / "corrupt.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\xff" * 4096)
    scheduler = Scheduler(Config(max_memory=ONE_MODEL))
    with pytest.raises(RunnerLoadFailed, match="unable to load model"):
        async with scheduler.acquire(make_model("broken:latest", bad), SMALL, None):
            pass
    assert scheduler.running() == []
    assert scheduler.queue_depth == 0
    await scheduler.close()


async def test_unload_by_name_stops_an_idle_runner_and_reports_whether_it_was_loaded(
    make_model,  # type: ignore[no-untyped-def]
) -> None:
    scheduler = Scheduler(Config(max_memory=ONE_MODEL))
    model = make_model("smollm2:135m")
    try:
        await scheduler.load(model, SMALL, None)
        assert await scheduler.unload("smollm2:135m")
        assert scheduler.running() == []
        assert not await scheduler.unload(model)
    finally:
        await scheduler.close()


async def test_runners_inherit_neither_listening_sockets_nor_socket_activation_variables(
    make_model,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    monkeypatch.setenv("LISTEN_FDS", "1")
    monkeypatch.setenv("LISTEN_PID", str(os.getpid()))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.set_inheritable(True)  # even an inheritable socket must not reach a runner
    scheduler = Scheduler(Config(max_memory=ONE_MODEL))
    try:
        async with scheduler.acquire(make_model("smollm2:135m"), SMALL, None) as lease:
            pid = lease.runner_pid
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            assert not any(v.startswith(b"LISTEN_") for v in environ)
            inode = os.fstat(listener.fileno()).st_ino
            links = [os.readlink(f) for f in Path(f"/proc/{pid}/fd").iterdir()]
            assert f"socket:[{inode}]" not in links
    finally:
        listener.close()
        await scheduler.close()


async def test_reconfigure_lowers_max_loaded_models_live(make_model) -> None:  # type: ignore[no-untyped-def]
    config = Config(max_memory=4 * ONE_MODEL, max_loaded_models=2, max_queue=512)
    scheduler = Scheduler(config)
    try:
        await scheduler.load(make_model("a:latest"), SMALL, None)
        await scheduler.load(make_model("b:latest"), SMALL, None)
        scheduler.reconfigure(Config(max_memory=4 * ONE_MODEL, max_loaded_models=1))
        await until(lambda: len(scheduler.running()) == 1, "the older model to go")
        assert names(scheduler) == {"b:latest"}
    finally:
        await scheduler.close()


def _runner_pids(scheduler: Scheduler) -> list[int]:
    return [r.handle.pid for r in scheduler._runners.values()]


async def test_close_stops_every_runner_and_fails_what_is_still_running(
    make_model,
) -> None:  # type: ignore[no-untyped-def]
    scheduler = Scheduler(Config(max_memory=ONE_MODEL))
    model = make_model("smollm2:135m")
    started = asyncio.Event()

    async def long_request() -> None:
        async with scheduler.acquire(model, SMALL, None) as lease:
            request = CompletionRequest(
                chat("Count to a thousand."), SamplingOptions(temperature=0)
            )
            async for _ in lease.generate(request):
                started.set()

    task = asyncio.create_task(long_request())
    async with asyncio.timeout(SAFETY):
        await started.wait()
    [pid] = _runner_pids(scheduler)
    await scheduler.close(drain_timeout=0)
    with pytest.raises(RunnerError, match="the model was unloaded"):
        async with asyncio.timeout(SAFETY):
            await task
    assert scheduler.running() == []
    assert not Path(f"/proc/{pid}").exists()
    with pytest.raises(RunnerError, match="shutting down"):
        async with scheduler.acquire(model, SMALL, None):
            pass
