"""The runner process: ``python -m llmd.runner --fd N --model PATH --load JSON --threads N``.

One process per loaded model. It loads the model, answers ``loaded`` (or a typed ``error``) on the
socketpair it inherited as fd N, then alternates between reading every frame that has arrived and
running one decode step, so a cancel or a new request takes effect before the next step.
It exits when the main process closes its end, sends ``shutdown``, or dies.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import select
import signal
import socket
import sys
from pathlib import Path

from llmd.errors import LlmdError, RunnerLoadFailed
from llmd.runner import protocol
from llmd.runner.request import Completed, LoadOptions
from llmd.submodule import bare_package

_PR_SET_PDEATHSIG = 1


def _import_bindings() -> None:
    """Make ``import llama_cpp`` give the ctypes bindings alone.

    llama-cpp-python's ``__init__`` also imports its high-level API (numpy, jinja2, diskcache,
    multiprocessing): most of a runner's start-up time and some 20 MB of its memory, none of it
    used here. The bare package is filled with what ``from .llama_cpp import *`` would give it.
    """
    package = bare_package("llama_cpp")
    from llama_cpp import llama_cpp as bindings

    for name, value in vars(bindings).items():
        if not name.startswith("_"):
            setattr(package, name, value)


# Before the engine's `import llama_cpp`: this module only ever runs as the runner process.
_import_bindings()

import llama_cpp as lc

from llmd.runner import cpu
from llmd.runner.embedding import Embedder
from llmd.runner.engine import Engine, StepFailed

# A test hook: LLMD_RUNNER_FAULT=load or =decode makes this runner kill itself with SIGSEGV at
# that point, as llama.cpp's kernels do on a CPU they mishandle, so the daemon's crash-loop
# handling can be exercised on any machine. Unset in production, it costs one lookup at start.
_FAULT = os.environ.get("LLMD_RUNNER_FAULT", "")


def _fault(point: str) -> None:
    if _FAULT == point:
        os.kill(os.getpid(), signal.SIGSEGV)


def _die_with_parent() -> None:
    # If the daemon is SIGKILLed its socket end closes too, but a runner busy in llama_decode would
    # only notice after the step; the kernel signal makes the exit immediate. The "parent" here is
    # the thread that forked us: asyncio spawns from the event loop's thread, which lives as long
    # as the daemon does.
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass


class Runner:
    def __init__(self, sock: socket.socket, engine: Engine) -> None:
        self._sock = sock
        self._engine = engine
        self._frames = protocol.FrameBuffer()
        self._out: list[bytes] = []
        self._embedder: Embedder | None = None
        self.running = True

    def send(self, message: protocol.Message) -> None:
        self._out.append(protocol.encode(message))

    def flush(self) -> None:
        if self._out:
            self._sock.sendall(b"".join(self._out))
            self._out.clear()

    def _embedding(self) -> bool:
        return self._embedder is not None and self._embedder.busy

    def serve(self) -> None:
        while self.running:
            timeout = 0.0 if self._engine.busy or self._embedding() else None
            readable, _, _ = select.select([self._sock], [], [], timeout)
            if readable:
                data = self._sock.recv(1 << 20)
                if not data:
                    return
                for message in self._frames.feed(data):
                    self._handle(message)
            if self.running and self._engine.busy:
                _fault("decode")
                self._step()
            if self.running and self._embedding():
                self._embed_step()  # one input, then the generating slots move again
            self.flush()

    def _embed_step(self) -> None:
        assert self._embedder is not None
        for done in self._embedder.step():
            if done.error is not None:
                self.send(protocol.error_message(done.id, done.error))
            else:
                self.send({"type": "embedding", "id": done.id, "embeddings": done.vectors,
                           "prompt_eval_count": done.count})

    def _step(self) -> None:
        try:
            events = self._engine.step()
        except StepFailed as failure:
            for job_id in failure.job_ids:
                self.send(protocol.error_message(job_id, failure.error))
            return
        items: list[list[object]] = []
        for job_id, event in events:
            if isinstance(event, Completed):
                if items:
                    self.send({"type": "deltas", "items": items})
                    items = []
                self.send(protocol.done_message(job_id, event))
            elif event.logprobs:
                items.append(
                    [job_id, event.text, protocol.logprobs_to_wire(event.logprobs)]
                )
            else:
                items.append([job_id, event.text])
        if items:
            self.send({"type": "deltas", "items": items})

    def _handle(self, message: protocol.Message) -> None:
        kind = message["type"]
        job_id = message.get("id")  # type: ignore[union-attr]
        try:
            if message["type"] == "completion":
                request = protocol.request_from_wire(message["request"])
                self._engine.submit(message["id"], request)
            elif message["type"] == "cancel":
                if not self._engine.cancel(message["id"]) and self._embedder is not None:
                    self._embedder.cancel(message["id"])
            elif message["type"] == "embed":
                self._embedder = self._engine.embedder
                self._embedder.submit(message["id"], list(message["inputs"]), message["truncate"])
            elif message["type"] == "tokenize":
                tokens = self._engine.vocab.tokenize(
                    message["text"], message["add_special"]
                )
                self.send({"type": "tokens", "id": message["id"], "tokens": tokens})
            elif message["type"] == "detokenize":
                text = self._engine.vocab.detokenize(message["tokens"])
                self.send({"type": "text", "id": message["id"], "text": text})
            elif message["type"] == "shutdown":
                self.running = False
            else:
                raise ValueError(f"unknown runner message type {kind!r}")
        except (LlmdError, ValueError, KeyError, TypeError) as exc:
            self.send(
                protocol.error_message(job_id if isinstance(job_id, int) else None, exc)
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llmd.runner")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--load", required=True, help="LoadOptions as JSON")
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--debug", action="store_true")
    args = parser.parse_args(argv)
    _die_with_parent()
    # The main process handles Ctrl-C for the whole group; the runner leaves when told or orphaned.
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    import llama_cpp._logger

    llama_cpp._logger.set_verbose(args.debug)
    sock = socket.socket(fileno=args.fd)
    fields = json.loads(args.load)
    load = LoadOptions(**{**fields, "adapters": tuple(fields.get("adapters", ()))})
    _fault("load")
    try:
        engine = Engine(args.model, load, args.threads)
    except LlmdError as exc:
        sock.sendall(protocol.encode(protocol.error_message(None, exc)))
        return 1
    except Exception as exc:  # noqa: BLE001 - any load failure is reported, typed, then we exit
        failure = RunnerLoadFailed(f"unable to load model: {args.model}: {exc}")
        sock.sendall(protocol.encode(protocol.error_message(None, failure)))
        return 1
    sock.sendall(
        protocol.encode(
            {
                "type": "loaded",
                "n_ctx": engine.n_ctx_seq,
                "n_ctx_train": engine.n_ctx_train,
                "n_parallel": 1 if load.embedding else max(1, load.num_parallel),
                "pid": os.getpid(),
                "cpu": cpu.probe(lc.llama_print_system_info()).to_wire(),
            }
        )
    )
    runner = Runner(sock, engine)
    try:
        runner.serve()
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        engine.close()
        sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
