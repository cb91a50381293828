"""A soak: 1,000 mixed requests at 16 concurrency against a live llmd, one runner SIGKILLed midway.

The mix (fixed seed): chat and generate, streamed and not, embed, show, tags and ps; 10% of the
clients hang up mid-way (after the first streamed line, or by cancelling a plain request); a few
invalid bodies. Asserted:

- every request succeeds or gets a clear error (JSON ``{"error": ...}``, or a stream's last line);
- the only failures are requests in flight on the killed runner, and they say the runner died;
- the daemon's RSS after the soak is within 10% of its RSS after a warm-up;
- nothing leaks: /api/ps lists one runner, STATUS= reports 0 queued, and an unload
  (``keep_alive: 0``) empties /api/ps, which it does only once no lease is held.

Every loop is bounded in count and time; all traffic is on loopback.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from fuzz.server_env import MODEL, fuzz_env
from harness import LiveServer, create_smollm2, live_server

# LLMD_SOAK_REQUESTS shortens a run by hand on a busy machine; the suite always sends 1,000.
REQUESTS = int(os.environ.get("LLMD_SOAK_REQUESTS", "1000"))
CONCURRENCY = 16
WARMUP = min(96, REQUESTS // 2)
KILL_AT = REQUESTS // 2  # the runner is killed when this request starts
HANGUP_RATE = 0.10
SEED = 15
REQUEST_TIMEOUT = 120.0  # a hang, never a performance assertion
SOAK_DEADLINE = 900.0
GRACE = 1.0  # seconds after the kill in which a request may still be handed to the dying runner
RSS_TOLERANCE = 0.10

PROMPTS = ("Hi", "Name a colour.", "Count to three.", "What is 2+2?", "Say something short.")
INVALID = (
    ("/api/chat", b"{not json"),
    ("/api/generate", b'{"model": 5}'),
    ("/api/chat", b'{"model": "smollm2:135m", "messages": "hello"}'),
    ("/api/embed", b'{"model": "smollm2:135m", "input": 7}'),
    ("/api/generate", b'{"model": "no-such-model:1b", "prompt": "hi"}'),
    ("/api/show", b"[]"),
)


@dataclass
class Outcome:
    index: int
    kind: str
    started: float
    ended: float = 0.0
    status: int = 0
    error: str = ""  # the server's error message, or what went wrong on the wire
    hung_up: bool = False
    expected_error: bool = False

    @property
    def failed(self) -> bool:
        return not self.hung_up and not self.expected_error and (self.status != 200 or bool(self.error))


@dataclass
class Soak:
    server: LiveServer
    outcomes: list[Outcome] = field(default_factory=list)
    killed_at: float | None = None
    killed_pid: int | None = None


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


class StatusListener:
    """A NOTIFY_SOCKET the daemon sends STATUS= to, read all along as systemd reads it (a full
    datagram queue would block the daemon's sd_notify, and with it the event loop)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.last_status = ""
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._read, name="notify-listener", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        deadline = time.monotonic() + SOAK_DEADLINE * 2
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                message = self.sock.recv(4096).decode()
            except TimeoutError:
                continue
            for line in message.splitlines():
                if line.startswith("STATUS="):
                    self.last_status = line[len("STATUS="):]

    def close(self) -> None:
        self._stop.set()
        self._reader.join(timeout=5)
        self.sock.close()


@pytest.fixture(scope="module")
def notify(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StatusListener]:
    listener = StatusListener(tmp_path_factory.mktemp("notify") / "notify.sock")
    yield listener
    listener.close()


@pytest.fixture(scope="module")
def soak_server(
    tmp_path_factory: pytest.TempPathFactory, gguf_path: Path, notify: StatusListener
) -> Iterator[LiveServer]:
    env = fuzz_env(OLLAMA_NUM_PARALLEL="4", NOTIFY_SOCKET=str(notify.path))
    with live_server(tmp_path_factory.mktemp("soak-server"), env=env) as live:
        create_smollm2(live.url, gguf_path, MODEL)
        yield live


def plan(rng: random.Random, count: int, *, faults: bool) -> list[tuple[str, bool, bool]]:
    """(kind, stream, hang up) per request; hang-ups and invalid bodies only when ``faults``."""
    kinds = ("chat", "generate", "embed", "show", "tags", "ps", "invalid")
    weights = (30, 25, 15, 10, 10, 7, 3 if faults else 0)
    out = []
    for _ in range(count):
        kind = rng.choices(kinds, weights)[0]
        stream = kind in ("chat", "generate") and rng.random() < 0.5
        hangup = faults and kind != "invalid" and rng.random() < HANGUP_RATE
        out.append((kind, stream, hangup))
    return out


def request_for(kind: str, stream: bool, rng: random.Random) -> tuple[str, str, bytes | None]:
    options = {"num_predict": rng.randint(1, 6), "seed": rng.randint(0, 1000)}
    prompt = rng.choice(PROMPTS)
    bodies: dict[str, tuple[str, str, object]] = {
        "chat": ("POST", "/api/chat", {"model": MODEL, "stream": stream, "options": options,
                                       "messages": [{"role": "user", "content": prompt}]}),
        "generate": ("POST", "/api/generate", {"model": MODEL, "prompt": prompt, "stream": stream,
                                               "options": options}),
        "embed": ("POST", "/api/embed", {"model": MODEL, "input": [prompt] * rng.randint(1, 3)}),
        "show": ("POST", "/api/show", {"model": MODEL}),
        "tags": ("GET", "/api/tags", None),
        "ps": ("GET", "/api/ps", None),
    }
    if kind == "invalid":
        path, raw = rng.choice(INVALID)
        return "POST", path, raw
    method, path, body = bodies[kind]
    return method, path, None if body is None else json.dumps(body).encode()


def error_of(response_text: str) -> str:
    """The ``error`` of a JSON error body, or a note that the body was not one."""
    try:
        value = json.loads(response_text)
    except ValueError:
        return f"not JSON: {response_text[:80]!r}"
    if not isinstance(value, dict) or not isinstance(value.get("error"), str) or not value["error"]:
        return f"no error message: {response_text[:80]!r}"
    return str(value["error"])


async def one(client: httpx.AsyncClient, outcome: Outcome, method: str, path: str,
              body: bytes | None, stream: bool, hangup: bool, rng: random.Random) -> None:
    headers = {"content-type": "application/json"} if body is not None else {}
    try:
        if hangup and not stream:
            outcome.hung_up = True
            with_deadline = client.request(method, path, content=body, headers=headers)
            try:
                await asyncio.wait_for(with_deadline, timeout=rng.uniform(0.02, 0.4))
            except TimeoutError:
                pass  # the client went away before the answer; the server must not mind
            return
        async with client.stream(method, path, content=body, headers=headers) as response:
            outcome.status = response.status_code
            if response.status_code != 200:
                outcome.error = error_of((await response.aread()).decode(errors="replace"))
                return
            if not stream:
                await response.aread()
                return
            last: dict[str, object] = {}
            async for line in response.aiter_lines():
                if not line:
                    continue
                last = json.loads(line)
                if "error" in last:
                    outcome.error = str(last["error"]) or "empty in-stream error"
                    return
                if hangup:
                    outcome.hung_up = True
                    return  # closing the stream here is the hang-up
            if last.get("done") is not True:
                outcome.error = f"stream ended without done: {last}"
    except httpx.HTTPError as exc:
        outcome.error = f"transport: {type(exc).__name__}: {exc}"
    finally:
        outcome.ended = time.monotonic()


def kill_runner(soak: Soak) -> None:
    runners = children(soak.server.process.pid)
    assert len(runners) == 1, f"one runner (chat, generate and embed share it), not {runners}"
    soak.killed_pid = runners[0]
    os.kill(soak.killed_pid, signal.SIGKILL)
    soak.killed_at = time.monotonic()


async def drive(soak: Soak, count: int, *, faults: bool, seed: int) -> None:
    rng = random.Random(seed)
    gate = asyncio.Semaphore(CONCURRENCY)
    limits = httpx.Limits(max_connections=CONCURRENCY * 2)
    async with httpx.AsyncClient(base_url=soak.server.url, timeout=REQUEST_TIMEOUT,
                                 limits=limits, trust_env=False) as client:

        async def task(index: int, kind: str, stream: bool, hangup: bool) -> None:
            async with gate:
                if faults and index == KILL_AT:
                    kill_runner(soak)
                method, path, body = request_for(kind, stream, rng)
                outcome = Outcome(index, kind if kind != "invalid" else f"invalid {path}",
                                  time.monotonic(), expected_error=kind == "invalid")
                soak.outcomes.append(outcome)
                await one(client, outcome, method, path, body, stream, hangup, rng)

        async with asyncio.timeout(SOAK_DEADLINE):
            await asyncio.gather(*(task(i, *spec) for i, spec in enumerate(plan(rng, count, faults=faults))))


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def is_killed_runners_own(outcome: Outcome, soak: Soak) -> bool:
    assert soak.killed_at is not None
    in_flight = outcome.started <= soak.killed_at + GRACE and outcome.ended >= soak.killed_at
    return in_flight and "runner" in outcome.error and outcome.kind in ("chat", "generate", "embed")


@pytest.mark.model
@pytest.mark.slow
def test_a_thousand_mixed_requests_with_hangups_and_a_killed_runner_leave_nothing_behind(
    soak_server: LiveServer, notify: StatusListener,
) -> None:
    pid = soak_server.process.pid
    warm = Soak(soak_server)
    asyncio.run(drive(warm, WARMUP, faults=False, seed=SEED + 1))
    assert [o for o in warm.outcomes if o.failed] == []
    rss_before = rss_kib(pid)

    soak = Soak(soak_server)
    started = time.monotonic()
    asyncio.run(drive(soak, REQUESTS, faults=True, seed=SEED))
    elapsed = time.monotonic() - started
    assert len(soak.outcomes) == REQUESTS and soak.killed_at is not None

    failures = [o for o in soak.outcomes if o.failed]
    foreign = [o for o in failures if not is_killed_runners_own(o, soak)]
    by_status = Counter(o.status for o in soak.outcomes)
    print(f"\nsoak: {REQUESTS} requests in {elapsed:.1f}s, by status {dict(by_status)}, "
          f"hung up {sum(o.hung_up for o in soak.outcomes)}, invalid "
          f"{sum(o.expected_error for o in soak.outcomes)}, failed {len(failures)} "
          f"(killed runner's {len(failures) - len(foreign)}), errors "
          f"{Counter(o.error[:60] for o in failures)}")
    assert foreign == [], foreign[:5]
    unclear = [o for o in soak.outcomes if o.expected_error and (
        o.status not in (400, 404) or o.error.startswith(("not JSON", "no error")))]
    assert unclear == [], unclear[:5]  # an invalid body gets a 400 (or 404) with a message
    assert soak_server.process.poll() is None, "the daemon died"
    assert soak.killed_pid not in children(pid)

    # quiet again: one runner (the reloaded one), nothing queued
    running = soak_server.http.get("/api/ps").json()["models"]
    assert [m["name"] for m in running] == [MODEL]
    wait_until(lambda: notify.last_status.endswith("0 queued"), 30, f"STATUS= {notify.last_status!r}")

    rss_after = rss_kib(pid)
    print(f"daemon RSS: {rss_before} KiB after warm-up, {rss_after} KiB after the soak "
          f"({(rss_after - rss_before) / rss_before:+.1%})")
    assert rss_after <= rss_before * (1 + RSS_TOLERANCE)

    # an unload takes effect only when no lease is left on the runner
    unload = soak_server.http.post("/api/generate", json={"model": MODEL, "keep_alive": 0})
    assert unload.status_code == 200, unload.text
    wait_until(lambda: soak_server.http.get("/api/ps").json()["models"] == [], 30,
               "a lease is still held: the model did not unload")
    assert "Traceback" not in soak_server.stderr()
