"""Three llmd hosts behind conf/haproxy/llmd.cfg, fed from one registry (tests/scaleout/topology.py),
driven through HAProxy with the real ollama and openai clients.

The tests share one topology and run in file order; each leaves all three hosts in the pool,
but the last, which takes one out for good.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import ollama
import openai
import pytest
from scaleout.topology import HOSTS, MODEL_A, MODELS_B, Topology, served_by, topology

pytestmark = [pytest.mark.scaleout, pytest.mark.model, pytest.mark.slow]

CLIENT_TIMEOUT = 120.0  # a hang guard, never a timing assertion
OPTIONS = {"num_predict": 12, "temperature": 0}
WORKERS = 3
LOAD_LIMIT = 240.0  # no load loop runs longer than this, whatever happens
LOAD_MAX_REQUESTS = 400


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory, gguf_path: Path) -> Iterator[Topology]:
    """The namespaces, the registry and HAProxy; no host started yet."""
    with topology(tmp_path_factory.mktemp("scaleout"), gguf_path) as t:
        yield t


@pytest.fixture(scope="module")
def topo(network: Topology) -> Topology:
    """All three hosts in the pool."""
    if any(h.process is None for h in network.hosts.values()):
        network.start_hosts()
    network.wait_in_pool(HOSTS)
    return network


@dataclass
class Outcome:
    started: float
    ended: float
    model: str
    client: str
    host: str       # X-Llmd-Host: which host HAProxy sent it to ("" when none answered)
    error: str = ""


class Clients:
    """One ollama and one openai client, remembering which host answered the last request."""

    def __init__(self, url: str, key: str) -> None:
        self.host = ""

        def seen(response: httpx.Response) -> None:
            self.host = served_by(response)

        hooks = {"response": [seen]}
        self.ollama = ollama.Client(host=url, timeout=CLIENT_TIMEOUT, event_hooks=hooks,
                                    headers={"Authorization": f"Bearer {key}"})
        self.openai = openai.OpenAI(
            base_url=f"{url}/v1", api_key=key, max_retries=0,  # a retry would hide a failure
            http_client=httpx.Client(timeout=CLIENT_TIMEOUT, event_hooks=hooks),
        )

    def close(self) -> None:
        self.ollama._client.close()
        self.openai.close()

    def request(self, model: str, n: int) -> Outcome:
        """The n-th request of a worker: ollama or openai, streamed or not, by turns."""
        client = ("ollama", "openai")[n % 2]
        started = time.monotonic()
        self.host = ""
        error = ""
        try:
            if client == "ollama":
                chunks = self.ollama.generate(model=model, prompt="Count to ten.", stream=True,
                                              options=OPTIONS)
                assert "".join(c.response for c in chunks)
            else:
                stream = self.openai.chat.completions.create(
                    model=model, messages=[{"role": "user", "content": "Say hello."}],
                    max_tokens=OPTIONS["num_predict"], temperature=0, stream=True)
                assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        except Exception as exc:  # every failure counts; which one is the test's business
            error = f"{type(exc).__name__}: {exc}"
        return Outcome(started, time.monotonic(), model, client, self.host, error)


class Load:
    """WORKERS threads sending requests back to back until stopped (bounded in count and time)."""

    def __init__(self, url: str, key: str, models: tuple[str, ...]) -> None:
        self.outcomes: list[Outcome] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._deadline = time.monotonic() + LOAD_LIMIT
        self._threads = [threading.Thread(target=self._work, args=(url, key, models[i % len(models)], i))
                         for i in range(WORKERS)]

    def _work(self, url: str, key: str, model: str, worker: int) -> None:
        with contextlib.closing(Clients(url, key)) as clients:
            n = worker
            while not self._stop.is_set() and time.monotonic() < self._deadline:
                outcome = clients.request(model, n)
                n += 1
                with self._lock:
                    self.outcomes.append(outcome)
                    if len(self.outcomes) >= LOAD_MAX_REQUESTS:
                        return

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(CLIENT_TIMEOUT)

    def wait_for(self, count: int, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.outcomes) < count:
            assert time.monotonic() < deadline, f"only {len(self.outcomes)} requests finished"
            time.sleep(0.1)


def host_of(url: str, key: str, model: str) -> str:
    """Which host HAProxy hashes ``model`` to: a request llmd refuses at once (no model load)."""
    answer = httpx.post(f"{url}/api/chat", json={"model": model, "messages": "not a list"},
                        headers={"Authorization": f"Bearer {key}"}, timeout=CLIENT_TIMEOUT)
    assert answer.status_code == 400, answer.text
    return served_by(answer)


def until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_with_no_host_ready_haproxy_answers_a_json_503_with_retry_after(network: Topology) -> None:
    answer = httpx.post(f"{network.url}/api/chat", json={"model": MODEL_A, "messages": []},
                        timeout=CLIENT_TIMEOUT)
    assert answer.status_code == 503
    assert answer.json() == {"error": "no llmd host is ready"}
    assert answer.headers["retry-after"] == "5"


def test_each_model_stays_on_one_host_and_a_second_model_on_another(
    topo: Topology, request: pytest.FixtureRequest
) -> None:
    clients = Clients(topo.url, topo.key)
    request.addfinalizer(clients.close)
    a_hosts = set()
    for n in range(4):
        outcome = clients.request(MODEL_A, n)
        assert not outcome.error, outcome.error
        a_hosts.add(outcome.host)
    assert len(a_hosts) == 1 and a_hosts <= set(HOSTS), a_hosts
    (host_a,) = a_hosts
    model_b = next((m for m in MODELS_B if host_of(topo.url, topo.key, m) != host_a), None)
    assert model_b is not None, f"every candidate name hashes to {host_a}"
    b_hosts = set()
    for n in range(4):
        outcome = clients.request(model_b, n)
        assert not outcome.error, outcome.error
        b_hosts.add(outcome.host)
    assert len(b_hosts) == 1 and host_a not in b_hosts, (host_a, b_hosts)
    # other routes are not hashed: the model list comes from whichever host has fewest connections
    names = [m.model for m in clients.ollama.list().models]
    assert MODEL_A in names


def test_kill_9_of_a_host_fails_only_its_requests_in_flight(topo: Topology) -> None:
    victim = host_of(topo.url, topo.key, MODEL_A)
    try:
        with Load(topo.url, topo.key, (MODEL_A,)) as load:
            load.wait_for(6)
            killed_at = time.monotonic()
            topo.hosts[victim].kill()
            # new requests keep coming until WORKERS x 3 more have finished after the kill
            until(lambda: len([o for o in load.outcomes if o.started > killed_at]) >= 3 * WORKERS,
                  120.0, "requests after the kill did not finish")
    finally:
        topo.hosts[victim].start()  # systemd's Restart=on-failure
    failed = [o for o in load.outcomes if o.error]
    after = [o for o in load.outcomes if o.started > killed_at]
    print(f"\nkill -9 of {victim}: {len(load.outcomes)} requests, {len(failed)} failed, "
          f"{len([o for o in after if o.error])} of the {len(after)} sent after the kill")
    # only requests in flight on the victim at the kill failed: started before, ended after it
    assert all(o.started <= killed_at <= o.ended for o in failed), failed
    assert len(failed) <= WORKERS
    assert after and not [o for o in after if o.error]
    assert {o.host for o in after} <= set(HOSTS) - {victim}
    topo.wait_in_pool(HOSTS)


def test_a_rolling_restart_under_steady_load_fails_no_request(topo: Topology) -> None:
    model_b = next(m for m in MODELS_B if host_of(topo.url, topo.key, m) != host_of(topo.url, topo.key, MODEL_A))
    with Load(topo.url, topo.key, (MODEL_A, model_b)) as load:
        load.wait_for(WORKERS)
        began = time.monotonic()
        for name in HOSTS:
            host = topo.hosts[name]
            before = len(load.outcomes)
            t0 = time.monotonic()
            # systemctl restart llmd: SIGTERM (/ready 503, HAProxy drains it, streams finish)...
            assert host.terminate() == 0, host.text()[-3000:]
            t1 = time.monotonic()
            # ... then ExecStart again: the pinned models are there, the preload makes it ready
            host.start()
            topo.wait_in_pool(HOSTS)
            print(f"\n{name}: stopped in {t1 - t0:.1f}s, back in the pool {time.monotonic() - t1:.1f}s later")
            load.wait_for(before + WORKERS)
        total = len(load.outcomes)
        print(f"rolling restart: {total} requests in {time.monotonic() - began:.0f}s, "
              f"{len([o for o in load.outcomes if o.error])} failed")
    failed = [o for o in load.outcomes if o.error]
    assert not failed, failed
    assert total >= 4 * WORKERS
    assert all(topo.hosts[name].starts >= 2 for name in HOSTS)


def test_a_host_whose_pin_mismatches_stays_out_of_the_pool(
    topo: Topology, request: pytest.FixtureRequest
) -> None:
    host = topo.hosts["llmd3"]
    assert host.terminate() == 0
    topo.write_config(host, pin_a="sha256:" + "0" * 64)
    host.start()
    until(lambda: "pin mismatch" in host.text().split("--- start")[-1], 120.0,
          "llmd3 did not report the pin mismatch")
    clients = Clients(topo.url, topo.key)
    request.addfinalizer(clients.close)
    for n in range(2 * len(MODELS_B)):  # over several check intervals, for every model
        model = (MODEL_A, *MODELS_B)[n % (1 + len(MODELS_B))]
        outcome = clients.request(model, n)
        assert not outcome.error, outcome.error
        assert outcome.host in ("llmd1", "llmd2"), outcome
        assert topo.states()["llmd3"].startswith("DOWN")
    assert host.process is not None and host.process.poll() is None  # alive, just not ready
