"""The main process's side of one runner: spawn it, talk to it over asyncio streams, reap it.

Every failure of the process or the socket is translated here, once, into an LlmdError:
a runner that dies before ``loaded`` is RunnerLoadFailed, one that dies later fails each request
it held with RunnerCrashed. A caller that stops iterating ``generate`` sends ``cancel``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

from llmd.config import Config
from llmd.errors import LlmdError, RunnerCrashed, RunnerError, RunnerLoadFailed
from llmd.runner import protocol
from llmd.runner.cpu import CpuInfo
from llmd.runner.request import (
    Completed,
    CompletionEvent,
    CompletionRequest,
    EmbeddingResult,
    LoadOptions,
)

log = logging.getLogger(__name__)

# Variables a runner must not see: systemd's socket-activation and notify protocol belong to the
# daemon alone (a child that saw LISTEN_FDS could take the HTTP socket for its own).
_PRIVATE_ENV = (
    "LISTEN_PID",
    "LISTEN_FDS",
    "LISTEN_FDNAMES",
    "NOTIFY_SOCKET",
    "WATCHDOG_PID",
    "WATCHDOG_USEC",
)

# llama.cpp's compute threads meet at an OpenMP barrier after every graph node. libgomp's default
# spins there for up to 300k iterations (about a millisecond) before sleeping, which pays only
# while every thread has a core to itself: a runner has a thread per core, so whenever anything
# else runs (the daemon writing tokens out, its clients, a neighbour) a preempted thread leaves the
# others spinning on the cores it needs, and on a busy 2-core machine a decode step went from 20 ms
# to seconds. Sleeping at once (OMP_WAIT_POLICY=passive) fixes that but pays a futex wake at each
# of the hundreds of barriers per step: 26 tok/s against llama-server's 92 on a quiet machine. A
# short spin covers the microseconds a barrier takes when nothing interferes and gives the core
# up soon after: on the quiet machine 116 tok/s (llama-server 98) for one stream. An
# OMP_WAIT_POLICY or GOMP_SPINCOUNT in llmd's own environment still wins.
_GOMP_SPINCOUNT = "10000"


def physical_cores() -> int:
    """Cores we may run on, counting hyperthread siblings once (llama.cpp's default thread count)."""
    allowed = os.sched_getaffinity(0)
    cores: set[tuple[str, str]] = set()
    try:
        for cpu in allowed:
            topo = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
            cores.add(
                (
                    (topo / "physical_package_id").read_text().strip(),
                    (topo / "core_id").read_text().strip(),
                )
            )
    except OSError:
        return max(1, len(allowed))
    return max(1, len(cores))


def describe_exit(returncode: int | None) -> str:
    """Go's wording for a process status, as Ollama reports a dead runner."""
    if returncode is None:
        return "unknown status"
    if returncode < 0:
        name = signal.strsignal(-returncode) or f"signal {-returncode}"
        return f"signal: {name.lower()}"
    return f"exit status {returncode}"


@dataclasses.dataclass(frozen=True, slots=True)
class RunnerInfo:
    pid: int
    n_ctx: int  # per slot
    n_ctx_train: int
    n_parallel: int
    cpu: CpuInfo | None = None  # None from a runner that does not report it


async def spawn_runner(
    model_path: Path, load: LoadOptions, config: Config
) -> RunnerHandle:
    """Start a runner for ``model_path`` and wait, up to ``config.load_timeout``, until it loaded."""
    threads = load.num_thread or config.num_threads or physical_cores()
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    env = {k: v for k, v in os.environ.items() if k not in _PRIVATE_ENV}
    if "OMP_WAIT_POLICY" not in env:
        env.setdefault("GOMP_SPINCOUNT", _GOMP_SPINCOUNT)
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "llmd.runner",
            "--fd",
            str(child.fileno()),
            "--model",
            str(model_path),
            "--load",
            json.dumps(dataclasses.asdict(load)),
            "--threads",
            str(threads),
            *(["--debug"] if config.debug else []),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            pass_fds=(
                child.fileno(),
            ),  # close_fds stays on: no listening socket leaks in
            env=env,
        )
    finally:
        child.close()
    reader, writer = await asyncio.open_unix_connection(
        sock=parent, limit=protocol.MAX_FRAME
    )
    handle = RunnerHandle(process, reader, writer)
    await handle._wait_loaded(model_path, config.load_timeout)
    return handle


class RunnerHandle:
    def __init__(
        self,
        process: asyncio.subprocess.Process,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self._process = process
        self._reader = reader
        self._writer = writer
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Queue[Any]] = {}
        self._reader_task: asyncio.Task[None] | None = None
        self._closing = False
        self._exited = asyncio.Event()
        self._on_exit: list[Callable[[RunnerHandle], None]] = []
        self.info: RunnerInfo | None = None

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def alive(self) -> bool:
        return not self._exited.is_set() and not self._closing

    @property
    def returncode(self) -> int | None:
        return self._process.returncode

    @property
    def in_flight(self) -> int:
        """Requests this runner is answering now: those a crash would take down."""
        return len(self._pending)

    def on_exit(self, callback: Callable[[RunnerHandle], None]) -> None:
        """Call ``callback(handle)`` once the process is gone, whatever the reason."""
        self._on_exit.append(callback)

    # --- start-up ------------------------------------------------------------------------------

    async def _read(self) -> protocol.Message:
        header = await self._reader.readexactly(protocol.HEADER.size)
        (size,) = protocol.HEADER.unpack(header)
        if size > protocol.MAX_FRAME:
            raise ValueError(f"runner frame of {size} bytes is too large")
        return protocol.decode(await self._reader.readexactly(size))

    async def _wait_loaded(self, model_path: Path, timeout: float) -> None:
        try:
            async with asyncio.timeout(timeout if timeout > 0 else None):
                first = await self._read()
        except TimeoutError:
            await self._reap(kill=True)
            raise RunnerLoadFailed(
                f"timed out waiting for llama runner to start: {model_path}"
            ) from None
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            await self._reap(kill=True)
            status = describe_exit(self.returncode)
            raise RunnerLoadFailed(
                f"llama runner process has terminated: {status}", exit_status=status
            ) from None
        except BaseException:
            await asyncio.shield(self._reap(kill=True))
            raise
        if first["type"] == "error":
            await self._reap(kill=False)
            error = protocol.error_from(first)
            raise (
                error
                if isinstance(error, RunnerLoadFailed)
                else RunnerLoadFailed(str(error))
            )
        if first["type"] != "loaded":
            await self._reap(kill=True)
            raise RunnerLoadFailed(
                f"unexpected first message from runner: {first['type']}"
            )
        self.info = RunnerInfo(
            first["pid"],
            first["n_ctx"],
            first["n_ctx_train"],
            first["n_parallel"],
            CpuInfo.from_wire(first.get("cpu")),
        )
        self._reader_task = asyncio.get_running_loop().create_task(self._read_loop())

    async def _reap(self, *, kill: bool) -> None:
        if kill:
            self.kill()
        await self._process.wait()
        self._writer.close()
        self._exited.set()

    # --- the stream of frames ------------------------------------------------------------------

    async def _read_loop(self) -> None:
        try:
            while True:
                self._dispatch(await self._read())
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            if self._process.returncode is None and not self._closing:
                # The socket broke but the process may live on: it is of no use any more.
                self.kill()
            returncode = await self._process.wait()
            self._writer.close()
            self._exited.set()
            for queue in self._pending.values():
                if self._closing:
                    queue.put_nowait(RunnerError("the model was unloaded"))
                else:
                    queue.put_nowait(
                        RunnerCrashed(
                            f"llama runner process has terminated: {describe_exit(returncode)}"
                        )
                    )
            for callback in self._on_exit:
                try:
                    callback(self)
                except Exception:
                    log.exception("runner exit callback failed")

    def _dispatch(self, message: protocol.Message) -> None:
        kind = message["type"]
        if kind == "deltas":
            for item in message["items"]:  # type: ignore[typeddict-item]
                queue = self._pending.get(item[0])
                if queue is not None:
                    queue.put_nowait(protocol.delta_from_item(item))
            return
        job_id = message.get("id")
        queue = self._pending.get(job_id) if isinstance(job_id, int) else None
        if kind == "error":
            error = protocol.error_from(message)  # type: ignore[arg-type]
            if queue is not None:
                queue.put_nowait(error)
            else:
                log.warning(
                    "runner error", extra={"PID": self.pid, "ERROR": str(error)}
                )
        elif queue is None:
            return  # an answer for a request the caller already gave up on
        elif kind == "done":
            queue.put_nowait(protocol.completed_from(message))  # type: ignore[arg-type]
        else:
            queue.put_nowait(message)

    def _send(self, message: protocol.Message) -> None:
        if not self.alive or self._writer.is_closing():
            raise RunnerCrashed(
                f"llama runner process has terminated: {describe_exit(self.returncode)}"
            )
        self._writer.write(protocol.encode(message))

    async def _call(self, build: Callable[[int], protocol.Message]) -> dict[str, Any]:
        job_id = next(self._ids)
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self._pending[job_id] = queue
        try:
            self._send(build(job_id))
            answer = await queue.get()
        finally:
            self._pending.pop(job_id, None)
        if isinstance(answer, LlmdError):
            raise answer
        return answer  # type: ignore[no-any-return]

    # --- requests ------------------------------------------------------------------------------

    async def generate(
        self, request: CompletionRequest
    ) -> AsyncIterator[CompletionEvent]:
        job_id = next(self._ids)
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self._pending[job_id] = queue
        finished = False
        try:
            self._send(
                {
                    "type": "completion",
                    "id": job_id,
                    "request": protocol.request_to_wire(request),
                }
            )
            while True:
                event = await queue.get()
                if isinstance(event, LlmdError):
                    finished = True
                    raise event
                if isinstance(event, Completed):
                    finished = True
                    yield event
                    return
                yield event
        finally:
            self._pending.pop(job_id, None)
            if not finished and self.alive and not self._writer.is_closing():
                # The caller went away: free the slot before the runner's next decode step.
                self._writer.write(protocol.encode({"type": "cancel", "id": job_id}))

    async def embed(self, inputs: Sequence[str], truncate: bool) -> EmbeddingResult:
        answer = await self._call(
            lambda i: {
                "type": "embed",
                "id": i,
                "inputs": list(inputs),
                "truncate": truncate,
            }
        )
        return EmbeddingResult(
            embeddings=tuple(tuple(v) for v in answer["embeddings"]),
            prompt_eval_count=answer["prompt_eval_count"],
        )

    async def tokenize(self, text: str, add_special: bool = False) -> list[int]:
        answer = await self._call(
            lambda i: {
                "type": "tokenize",
                "id": i,
                "text": text,
                "add_special": add_special,
            }
        )
        return list(answer["tokens"])

    async def detokenize(self, tokens: Sequence[int]) -> str:
        answer = await self._call(
            lambda i: {"type": "detokenize", "id": i, "tokens": list(tokens)}
        )
        return str(answer["text"])

    # --- shutdown ------------------------------------------------------------------------------

    def kill(self) -> None:
        # os.kill, not Process.kill: Popen.send_signal polls first and would reap an exited runner
        # behind asyncio's child watcher, which then reports a bogus "exit status 255".
        if self._process.returncode is None:
            try:
                os.kill(self._process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    async def wait(self) -> None:
        await self._exited.wait()

    async def close(self, timeout: float = 5.0) -> None:
        """Ask the runner to exit; kill it if it has not within ``timeout`` seconds."""
        if self._exited.is_set():
            return
        if not self._writer.is_closing():
            self._writer.write(protocol.encode({"type": "shutdown"}))
        self._closing = True
        try:
            async with asyncio.timeout(timeout):
                await self._process.wait()
        except TimeoutError:
            self.kill()
        if self._reader_task is not None:
            await asyncio.shield(self._reader_task)
        else:
            await self._reap(kill=True)
