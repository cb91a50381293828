"""Which models are resident: load on demand, keep each for its keep_alive, evict, queue.

Rules, as Ollama's server/sched.go has them:
- A request holds a *lease* on the runner of its model; the runner's refcount counts leases and
  requests waiting for one of its ``num_parallel`` slots (FIFO). At refcount 0 the keep_alive timer
  is armed; a request's keep_alive, when given, replaces the runner's duration (None keeps it; on
  first load None means ``config.keep_alive``; 0 unloads after the request; inf never expires).
- One model loads at a time. To make room, idle runners (refcount 0) are unloaded least recently
  used first until the new one fits the memory budget and ``max_loaded_models``; a busy runner is
  never evicted, the load waits for one to go idle instead. A model larger than the whole budget
  fails at once with InsufficientMemory.
- Requests waiting for a load or a slot are counted; beyond ``max_queue`` they get QueueFull.
- A runner that dies fails its own requests with RunnerCrashed and is forgotten; the next request
  loads the model again. One that dies while loading or before its first answer
  ``CRASH_LOOP_LIMIT`` times in a row is not respawned for a cool-down that doubles with each
  further failure: its requests get ModelCoolingDown (503, Retry-After) at once, and an explicit
  load (D-Bus ``Load``, ``llmctl load``) retries at once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import signal
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
import contextlib
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from llmd import memory
from llmd.config import Config
from llmd.errors import (
    InsufficientMemory,
    LoadTimeout,
    ModelCoolingDown,
    QueueFull,
    RunnerCrashed,
    RunnerError,
    RunnerLoadFailed,
)
from llmd.metrics import Metrics, ModelResidency, Residency
from llmd.runner.cpu import CpuInfo
from llmd.runner.handle import RunnerHandle, describe_exit, spawn_runner
from llmd.runner.request import (
    Completed,
    CompletionEvent,
    CompletionRequest,
    EmbeddingResult,
    LoadOptions,
)
from llmd.system import messages

if TYPE_CHECKING:
    from llmd.store import Model

log = logging.getLogger(__name__)

Spawn = Callable[[Path, LoadOptions, Config], Awaitable[RunnerHandle]]

# Ollama's default when OLLAMA_MAX_LOADED_MODELS is 0: three per GPU, and we count the CPU as one.
_DEFAULT_MAX_LOADED = 3
_UNLOAD_GRACE = (
    5.0  # seconds a runner gets to exit after "shutdown" before it is killed
)

# Respawning a runner that crashes on every load or first decode only repeats the crash, each time
# at the cost of a model load (an AMX host went through 25 runners in 20 s): after this many
# failures in a row the model cools down, first for COOLDOWN_FIRST seconds, doubling with every
# further failure up to COOLDOWN_MAX (LocalAI's --model-load-failure-cooldown is the model).
CRASH_LOOP_LIMIT = 3
COOLDOWN_FIRST = 10.0
COOLDOWN_MAX = 600.0


@dataclass(frozen=True, slots=True)
class RunningModel:
    """One resident model, for /api/ps and the D-Bus Manager."""

    model: Model
    size: int
    expires_at: datetime | None  # None: kept forever
    context_length: int
    in_flight: int
    size_vram: int = 0
    cpu: CpuInfo | None = None  # what the runner computes on, as it reported at load


@dataclass(frozen=True, slots=True)
class FailedModel:
    """A model whose runner crashed while loading or before its first answer, for status."""

    name: str
    failures: int  # in a row
    status: str  # the last runner's exit, e.g. "signal: segmentation fault"
    retry_at: datetime | None  # None: the next request spawns a runner again


@dataclass
class _Failures:
    name: str
    count: int = 0
    status: str = ""
    retry_at: float = 0.0  # the scheduler's clock; 0 while not cooling down
    retry_wall: datetime | None = None


class _Runner:
    """Scheduler-side state of one runner process."""

    def __init__(
        self,
        model: Model,
        load: LoadOptions,
        handle: RunnerHandle,
        size: int,
        session: float,
        now: float,
    ) -> None:
        self.model = model
        self.load = load
        self.handle = handle
        self.size = size
        self.session = session  # keep_alive seconds
        self.refcount = 0
        self.last_used = now
        self.expires_at: datetime | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.embeds = False  # a generating runner that has made its embedding context
        self.unloading = False  # no new leases; it goes as soon as it is idle
        self.removed = False  # _unload has started
        self.slots = (
            handle.info.n_parallel if handle.info else max(1, load.num_parallel)
        )
        self.active = 0
        self.waiters: deque[asyncio.Future[None]] = deque()
        self.answered = False  # a request got its first token or embedding from this process

    async def take_slot(self) -> None:
        if self.active < self.slots and not self.waiters:
            self.active += 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiters.append(future)
        try:
            await future
        except BaseException:
            if future.done() and not future.cancelled() and future.exception() is None:
                self.give_slot()  # handed a slot just as we left: pass it on
            elif future in self.waiters:
                self.waiters.remove(future)
            raise

    def give_slot(self) -> None:
        while self.waiters:
            future = self.waiters.popleft()
            if not future.done():
                future.set_result(None)  # the slot changes hands; `active` stays
                return
        self.active -= 1

    def fail_waiters(self, error: Exception) -> None:
        while self.waiters:
            future = self.waiters.popleft()
            if not future.done():
                future.set_exception(error)


class Lease:
    """A request's hold on one slot of a loaded model; valid inside ``Scheduler.acquire``."""

    def __init__(
        self,
        runner: _Runner,
        load_duration: int,
        answered: Callable[[_Runner], None],
        metrics: Metrics,
        since: float,
    ) -> None:
        self._runner = runner
        self._answered = answered
        self.model = runner.model
        self.load_duration = load_duration  # ns; 0 when the model was already loaded
        self._metrics = metrics
        self._since = since  # perf_counter() at admission

    @property
    def runner_pid(self) -> int:
        return self._runner.handle.pid

    @property
    def context_length(self) -> int:
        info = self._runner.handle.info
        return info.n_ctx if info else self._runner.load.num_ctx

    async def generate(self, req: CompletionRequest) -> AsyncIterator[CompletionEvent]:
        timing = self._metrics.generation(_name(self.model), self._since)
        async with contextlib.aclosing(self._runner.handle.generate(req)) as events:  # type: ignore[type-var]
            async for event in events:
                # an answer from the runner proves it survives a decode (the crash-loop count)
                self._answered(self._runner)
                if isinstance(event, Completed):
                    # prompt_eval_count counts the evaluated tokens only, as Ollama's does
                    timing.done(event.prompt_eval_count + event.prompt_cached, event.eval_count,
                                cached_tokens=event.prompt_cached)
                else:
                    timing.token()
                yield event
                if isinstance(event, Completed):
                    return

    async def embed(self, inputs: Sequence[str], truncate: bool) -> EmbeddingResult:
        runner = self._runner
        if not runner.load.embedding and not runner.embeds:
            # The runner makes its embedding context now and keeps it: count it from here on.
            runner.embeds = True
            runner.size += memory.embedding_context(_metadata(runner.model), runner.load.num_ctx)
        result = await runner.handle.embed(inputs, truncate)
        self._answered(runner)
        self._metrics.tokens(_name(self.model), result.prompt_eval_count)
        return result

    async def tokenize(self, text: str, add_special: bool = False) -> list[int]:
        return await self._runner.handle.tokenize(text, add_special)

    async def detokenize(self, tokens: Sequence[int]) -> str:
        return await self._runner.handle.detokenize(tokens)


class Scheduler:
    def __init__(
        self,
        config: Config,
        *,
        spawn: Spawn = spawn_runner,
        clock: Callable[[], float] = time.monotonic,
        metrics: Metrics | None = None,
    ) -> None:
        self._config = config
        self.metrics = metrics or Metrics(config.metrics)
        self.metrics.residency = self._residency
        self._spawn = spawn  # the process seam: tests and the daemon pass spawn_runner
        self._clock = clock
        self._runners: dict[str, _Runner] = {}
        self._load_lock = asyncio.Lock()
        self._changed = asyncio.Event()  # set whenever a runner goes idle or goes away
        self._waiting = 0
        self._closed = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._budget = memory.budget(config)
        self._failures: dict[str, _Failures] = {}  # by model digest

    # --- public surface ------------------------------------------------------------------------

    async def start(self) -> None:
        self._budget = memory.budget(self._config)
        log.info("scheduler started", extra={"MEMORY_BUDGET": self._budget})

    @property
    def queue_depth(self) -> int:
        return self._waiting

    @property
    def memory_budget(self) -> int:
        return self._budget

    def reconfigure(self, config: Config) -> None:
        """Apply a new Config live: keep_alive default, max_loaded_models, max_queue, memory."""
        self._config = config
        # What the kernel reports available now excludes what our runners hold, which the
        # budget must still cover: counted once, not twice.
        resident = sum(r.size for r in self._runners.values())
        self._budget = memory.budget(config, resident=resident)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop yet: the new limits apply from the next load on
        self._spawn_task(self._shed_excess())

    def acquire(
        self, model: Model, load: LoadOptions, keep_alive: float | None
    ) -> AbstractAsyncContextManager[Lease]:
        return self._acquire(model, load, keep_alive)

    async def load(
        self,
        model: Model,
        load: LoadOptions,
        keep_alive: float | None,
        *,
        retry_now: bool = False,
    ) -> int:
        """Make the model resident without running anything; returns the load time in ns.

        ``retry_now`` (an administrator's explicit load) ends a crash-loop cool-down first.
        """
        failures = self._failures.get(model.model_digest)
        if retry_now and failures is not None:
            failures.retry_at, failures.retry_wall = 0.0, None
        self._admit()
        try:
            runner, load_ns = await self._get_runner(model, load, keep_alive)
        finally:
            self._waiting -= 1
        self._release(runner)
        return load_ns

    async def unload(self, model: Model | str) -> bool:
        """Unload now if idle, else as soon as its last request ends. False if it was not loaded."""
        found = [r for r in self._runners.values() if _matches(r, model)]
        for runner in found:
            runner.session = 0.0
            runner.unloading = True
            if runner.refcount == 0:
                await self._unload(runner, "unloaded")
        return bool(found)

    def running(self) -> list[RunningModel]:
        now = datetime.now(UTC)
        out = []
        for runner in sorted(self._runners.values(), key=lambda r: -r.last_used):
            if math.isinf(runner.session):
                expires = None
            elif runner.refcount > 0 or runner.expires_at is None:
                expires = now + timedelta(seconds=runner.session)
            else:
                expires = runner.expires_at
            info = runner.handle.info
            out.append(
                RunningModel(
                    model=runner.model,
                    size=runner.size,
                    expires_at=expires,
                    context_length=info.n_ctx if info else runner.load.num_ctx,
                    in_flight=runner.active,
                    cpu=info.cpu if info else None,
                )
            )
        return out

    def failed(self) -> list[FailedModel]:
        """Models whose runners crashed in a row, most failures first."""
        return [
            FailedModel(f.name, f.count, f.status, f.retry_wall)
            for f in sorted(self._failures.values(), key=lambda f: -f.count)
        ]

    def _residency(self) -> Residency:
        """What /metrics reports of residency, read when scraped."""
        models = []
        for r in self._runners.values():
            info = r.handle.info
            cells = (info.n_ctx if info else r.load.num_ctx) * r.slots
            models.append(ModelResidency(_name(r.model), r.size, r.slots, r.active, cells,
                                         r.handle.kv_cells_used))
        return Residency(tuple(models), self._waiting, self._config.max_queue, self._budget)

    async def close(self, drain_timeout: float | None = None) -> None:
        """Refuse new requests, let running ones finish up to the deadline, stop every runner."""
        self._closed = True
        deadline = (
            self._config.drain_timeout if drain_timeout is None else drain_timeout
        )
        try:
            async with asyncio.timeout(deadline):
                while any(r.refcount for r in self._runners.values()):
                    await self._wait_for_change()
        except TimeoutError:
            pass
        await asyncio.gather(
            *(self._unload(r, "shutdown") for r in list(self._runners.values()))
        )
        for task in list(self._tasks):
            task.cancel()

    # --- leases --------------------------------------------------------------------------------

    def _admit(self) -> None:
        if self._closed:
            raise RunnerError("the server is shutting down")
        if self._waiting >= self._config.max_queue:
            self.metrics.rejected("queue_full")
            raise QueueFull()
        self._waiting += 1

    @asynccontextmanager
    async def _acquire(
        self, model: Model, load: LoadOptions, keep_alive: float | None
    ) -> AsyncIterator[Lease]:
        since = time.perf_counter()
        self._admit()
        try:
            for attempt in range(2):
                runner, load_ns = await self._get_runner(model, load, keep_alive)
                try:
                    await runner.take_slot()
                    break
                except RunnerCrashed:
                    # The runner died while we queued for one of its slots: the only retry
                    # policy in llmd, load it again once.
                    self._release(runner)
                    if attempt:
                        raise
                except BaseException:
                    self._release(runner)
                    raise
        finally:
            self._waiting -= 1
        self.metrics.queued(_name(model), time.perf_counter() - since)
        try:
            yield Lease(runner, load_ns, self._answered, self.metrics, since)
        finally:
            runner.give_slot()
            self._release(runner)

    def _usable(self, model: Model, load: LoadOptions) -> _Runner | None:
        runner = self._runners.get(model.model_digest)
        if (
            runner is None
            or runner.unloading
            or runner.load != load
            or not runner.handle.alive
        ):
            return None
        return runner

    def _hold(self, runner: _Runner, keep_alive: float | None) -> None:
        runner.refcount += 1
        if keep_alive is not None:
            runner.session = keep_alive
        if runner.timer is not None:
            runner.timer.cancel()
            runner.timer = None

    async def _get_runner(
        self, model: Model, load: LoadOptions, keep_alive: float | None
    ) -> tuple[_Runner, int]:
        load = self._effective(model, load)
        # A loaded runner that needs no reload skips the load queue, as in Ollama.
        runner = self._usable(model, load)
        if runner is not None:
            self._hold(runner, keep_alive)
            return runner, 0
        self._check_cooldown(model)
        # Waiting for busy runners to go idle happens outside the load lock, so that a load
        # that must wait does not hold up loads of other models that fit; the wait has the
        # load deadline.
        timeout = self._config.load_timeout
        deadline = asyncio.get_running_loop().time() + timeout if timeout > 0 else math.inf
        while True:
            async with self._load_lock:
                runner = self._usable(model, load)
                if runner is not None:
                    self._hold(runner, keep_alive)
                    return runner, 0
                changed = self._changed  # set by the next change, even one before we wait
                stale = self._runners.get(model.model_digest)
                if stale is not None:
                    # Different LoadOptions, or being unloaded: it must go before the reload.
                    stale.unloading = True
                    if stale.refcount == 0:
                        await self._unload(stale, "reload")
                        continue
                else:
                    size = memory.estimate_model(model.model_path, _metadata(model), load)
                    if size > self._budget:
                        raise InsufficientMemory(
                            f"model requires more system memory ({memory.format_bytes(size)}) "
                            f"than is available ({memory.format_bytes(self._budget)})"
                        )
                    if await self._make_room(size):
                        self._check_cooldown(model)
                        return await self._start_runner(model, load, size, keep_alive)
            await self._wait_for_room(changed, deadline, model)

    async def _wait_for_room(self, changed: asyncio.Event, deadline: float, model: Model) -> None:
        left = deadline - asyncio.get_running_loop().time()
        try:
            async with asyncio.timeout(None if math.isinf(deadline) else max(0.0, left)):
                await changed.wait()
        except TimeoutError:
            raise LoadTimeout(
                f"timed out waiting for busy models to make room for {_name(model)}"
            ) from None

    async def _start_runner(
        self, model: Model, load: LoadOptions, size: int, keep_alive: float | None
    ) -> tuple[_Runner, int]:
        started = time.perf_counter_ns()
        try:
            handle = await self._spawn(model.model_path, load, self._config)
        except RunnerLoadFailed as exc:
            if exc.exit_status is not None:
                self._crashed(model, exc.exit_status, None, "load", 0)
            raise
        load_ns = time.perf_counter_ns() - started
        session = self._config.keep_alive if keep_alive is None else keep_alive
        runner = _Runner(model, load, handle, size, session, self._clock())
        self._runners[model.model_digest] = runner
        handle.on_exit(lambda _: self._on_exit(runner))
        runner.refcount = 1
        self.metrics.model_loaded(_name(model), load_ns / 1e9)
        if handle.info is not None and handle.info.cpu is not None:
            self.metrics.build_info(cpu_variant=handle.info.cpu.variant)
        log.info(
            "model loaded",
            extra={
                "MESSAGE_ID": messages.MODEL_LOADED,
                "MODEL": _name(model),
                "PID": handle.pid,
                "SIZE": size,
                "LOAD_DURATION": load_ns,
                "NUM_CTX": load.num_ctx,
                "NUM_PARALLEL": runner.slots,
                **_cpu_fields(handle.info.cpu if handle.info else None),
            },
        )
        return runner, load_ns

    def _effective(self, model: Model, load: LoadOptions) -> LoadOptions:
        """Ollama clamps num_ctx to at least 4 and at most the model's training context.

        The model's LoRA adapters and whether it is an embedding model shape the runner too, so
        a model that shares its weights with another but not its adapters gets a runner of its own.
        """
        metadata = _metadata(model)
        arch = str(metadata.get("general.architecture", ""))
        trained = metadata.get(f"{arch}.context_length")
        num_ctx = max(4, load.num_ctx)
        if isinstance(trained, int) and trained > 0:
            num_ctx = min(num_ctx, trained)
        adapters = tuple(str(p) for p in getattr(model, "adapters", ()))
        embedding = f"{arch}.pooling_type" in metadata  # as GGUFInfo.pooling
        if (num_ctx, adapters, embedding) != (load.num_ctx, load.adapters, load.embedding):
            load = dataclasses.replace(load, num_ctx=num_ctx, adapters=adapters, embedding=embedding)
        # The KV settings, the default slots and the prompt cache: all sized from the budget.
        size = memory.file_size(model.model_path) + sum(memory.file_size(Path(p)) for p in adapters)
        return memory.resolve(size, metadata, load, self._config, self._budget)

    def _release(self, runner: _Runner) -> None:
        runner.refcount -= 1
        runner.last_used = self._clock()
        if runner.refcount > 0:
            return
        self._notify()
        if self._runners.get(runner.model.model_digest) is not runner:
            return  # crashed or already unloaded
        if runner.unloading or runner.session <= 0:
            runner.unloading = True
            self._spawn_task(self._unload(runner, "expired"))
        elif not math.isinf(runner.session):
            runner.expires_at = datetime.now(UTC) + timedelta(seconds=runner.session)
            runner.timer = asyncio.get_running_loop().call_later(
                runner.session, self._expire, runner
            )

    def _expire(self, runner: _Runner) -> None:
        runner.timer = None
        if runner.refcount == 0 and not runner.unloading:
            runner.unloading = True
            self._spawn_task(self._unload(runner, "expired"))

    # --- residency -----------------------------------------------------------------------------

    def _max_loaded(self) -> int:
        return self._config.max_loaded_models or _DEFAULT_MAX_LOADED

    async def _make_room(self, size: int) -> bool:
        """Evict idle runners, LRU first, until ``size`` fits; False if only busy ones are left."""
        while True:
            resident = list(self._runners.values())
            used = sum(r.size for r in resident)
            if used + size <= self._budget and len(resident) < self._max_loaded():
                return True
            idle = [r for r in resident if r.refcount == 0]
            if not idle:
                return False
            victim = min(idle, key=lambda r: r.last_used)
            victim.unloading = True
            await self._unload(victim, "evicted")

    async def _shed_excess(self) -> None:
        async with self._load_lock:
            while len(self._runners) > self._max_loaded():
                idle = [r for r in self._runners.values() if r.refcount == 0]
                if not idle:
                    return
                victim = min(idle, key=lambda r: r.last_used)
                victim.unloading = True
                await self._unload(victim, "evicted")

    async def _unload(self, runner: _Runner, reason: str) -> None:
        if runner.removed:
            await runner.handle.wait()
            return
        runner.removed = True
        if runner.timer is not None:
            runner.timer.cancel()
            runner.timer = None
        if self._runners.get(runner.model.model_digest) is runner:
            del self._runners[runner.model.model_digest]
        runner.fail_waiters(RunnerError("the model was unloaded"))
        await runner.handle.close(_UNLOAD_GRACE)
        self.metrics.model_unloaded(_name(runner.model), reason)
        evicted = reason == "evicted"
        log.info(
            "model evicted" if evicted else "model unloaded",
            extra={
                "MESSAGE_ID": messages.MODEL_EVICTED if evicted else messages.MODEL_UNLOADED,
                "MODEL": _name(runner.model),
                "PID": runner.handle.pid,
                "REASON": reason,
            },
        )
        self._notify()

    def _on_exit(self, runner: _Runner) -> None:
        if (
            self._runners.get(runner.model.model_digest) is not runner
            or runner.unloading
        ):
            return
        del self._runners[runner.model.model_digest]
        if runner.timer is not None:
            runner.timer.cancel()
        status = describe_exit(runner.handle.returncode)
        taken_down = runner.handle.in_flight
        runner.fail_waiters(
            RunnerCrashed(f"llama runner process has terminated: {status}")
        )
        info = runner.handle.info
        # One that had served crashed now and then: that is no runner that cannot work here.
        self._crashed(
            runner.model,
            status,
            info.cpu if info else None,
            "serving" if runner.answered else "first decode",
            taken_down,
            pid=runner.handle.pid,
            count=not runner.answered,
        )
        self._notify()

    # --- crash loops ---------------------------------------------------------------------------

    def _check_cooldown(self, model: Model) -> None:
        failures = self._failures.get(model.model_digest)
        if failures is None or failures.retry_at == 0.0:
            return
        left = failures.retry_at - self._clock()
        if left <= 0:
            # The cool-down is over: the next runner gets one chance, a crash starts a longer one.
            failures.retry_at, failures.retry_wall = 0.0, None
            return
        self.metrics.rejected("cooling_down")
        raise ModelCoolingDown(
            f"model '{failures.name}' is not started: its runner crashed {failures.count} times "
            f"in a row (llama runner process has terminated: {failures.status}); next try in "
            f"{math.ceil(left)}s; see journalctl -u llmd",
            math.ceil(left),
        )

    def _answered(self, runner: _Runner) -> None:
        if not runner.answered:
            runner.answered = True
            if self._runners.get(runner.model.model_digest) is runner:
                self._failures.pop(runner.model.model_digest, None)

    def _crashed(
        self,
        model: Model,
        status: str,
        cpu: CpuInfo | None,
        phase: str,
        taken_down: int,
        *,
        pid: int | None = None,
        count: bool = True,
    ) -> None:
        """One journal record per crash; a crash before any answer counts towards a cool-down."""
        self.metrics.runner_crashed(_name(model), _signal_name(status))
        failures = self._failures.setdefault(model.model_digest, _Failures(_name(model)))
        cooldown = 0.0
        if count:
            failures.count += 1
            failures.status = status
            if failures.count >= CRASH_LOOP_LIMIT:
                cooldown = min(
                    COOLDOWN_MAX, COOLDOWN_FIRST * 2 ** (failures.count - CRASH_LOOP_LIMIT)
                )
                failures.retry_at = self._clock() + cooldown
                failures.retry_wall = datetime.now(UTC) + timedelta(seconds=cooldown)
        else:
            self._failures.pop(model.model_digest, None)
        log.error(
            "runner crashed",
            extra={
                "MESSAGE_ID": messages.RUNNER_CRASHED,
                "MODEL": _name(model),
                "STATUS": status,
                "SIGNAL": _signal_name(status),
                "PHASE": phase,  # load, first decode or serving
                "REQUESTS": taken_down,
                "FAILURES": failures.count if count else 0,
                "COOLDOWN": int(cooldown),
                **({"PID": pid} if pid is not None else {}),
                **_cpu_fields(cpu),
            },
        )

    def _notify(self) -> None:
        # A fresh Event per change: whoever took the old one under the load lock is woken even
        # when the change came before it started waiting.
        self._changed.set()
        self._changed = asyncio.Event()

    async def _wait_for_change(self) -> None:
        await self._changed.wait()

    def _spawn_task(self, coro: Awaitable[None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)  # type: ignore[arg-type]
        # The loop keeps only weak references to tasks: hold one until it finishes.
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _metadata(model: Model) -> dict[str, object]:
    info = getattr(model, "info", None)
    metadata = getattr(info, "metadata", None)
    return metadata if isinstance(metadata, dict) else {}


def _cpu_fields(cpu: CpuInfo | None) -> dict[str, str]:
    if cpu is None:
        return {"CPU_VARIANT": "unknown"}
    return {"CPU_VARIANT": cpu.variant, "CPU_FEATURES": " ".join(cpu.features)}


def _signal_name(status: str) -> str:
    """``SIGSEGV`` for "signal: segmentation fault"; "" for an exit status."""
    if not status.startswith("signal: "):
        return ""
    wanted = status.removeprefix("signal: ")
    for sig in signal.Signals:
        if (signal.strsignal(sig) or "").lower() == wanted:
            return sig.name
    return ""


def _name(model: Model) -> str:
    return str(model.name.short)


def _matches(runner: _Runner, model: Model | str) -> bool:
    if isinstance(model, str):
        return _name(runner.model) == model
    return runner.model.model_digest == model.model_digest
