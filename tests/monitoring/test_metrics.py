"""GET /metrics after known requests, as llmd reports them and as a real Prometheus scrapes them."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import threading
from collections.abc import Iterator

import httpx
import pytest
import yaml
from harness import CLIENT_TIMEOUT, LiveServer
from monitoring.conftest import CONF, MODEL, scrape, value
from monitoring.prometheus_server import Prometheus, run_prometheus

pytestmark = pytest.mark.model

COUNTING = "Count from one to one hundred in words, separated by commas."


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory, server: LiveServer) -> Iterator[Prometheus]:
    target = server.url.removeprefix("http://")
    with run_prometheus(tmp_path_factory.mktemp("prometheus"), target,
                        rule_files=[CONF / "llmd-alerts.yml"]) as prom:
        yield prom


def generate(server: LiveServer, num_predict: int, prompt: str = COUNTING) -> list[dict[str, object]]:
    body = {"model": MODEL, "prompt": prompt, "stream": True,
            "options": {"num_predict": num_predict, "temperature": 0, "seed": 1}}
    with server.http.stream("POST", "/api/generate", json=body) as reply:
        assert reply.status_code == 200
        return [json.loads(line) for line in reply.iter_lines() if line]


def test_a_stream_of_n_tokens_adds_n_generated_tokens_and_one_time_to_first_token(server: LiveServer) -> None:
    generate(server, 2)  # the model is loaded before the counts are taken
    before = scrape(server.url)
    chunks = generate(server, 12)
    after = scrape(server.url)
    final = chunks[-1]
    assert final["done_reason"] == "length" and final["eval_count"] == 12

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("llmd_generated_tokens_total", model=MODEL) == 12
    assert moved("llmd_prompt_tokens_total", model=MODEL) == final["prompt_eval_count"]
    # the same prompt again: its prefix is still in the slot, and counted as served from cache
    assert moved("llmd_prompt_tokens_cached_total", model=MODEL) > 0
    assert moved("llmd_time_to_first_token_seconds_count", model=MODEL) == 1
    assert moved("llmd_time_per_output_token_seconds_count", model=MODEL) == 1
    assert moved("llmd_queue_wait_seconds_count", model=MODEL) == 1
    assert moved("llmd_requests_total", route="/api/generate", model=MODEL, status="2xx") == 1
    assert moved("llmd_model_load_seconds_count", model=MODEL) == 0  # it stayed loaded
    assert value(after, "llmd_models_loaded") == 1
    assert value(after, "llmd_slots", model=MODEL) == 1
    assert value(after, "llmd_kv_cells", model=MODEL) == 1024
    assert 0 < value(after, "llmd_kv_cells_used", model=MODEL) <= 1024
    assert 0 < value(after, "llmd_memory_used_bytes") <= value(after, "llmd_memory_budget_bytes")
    assert value(after, "llmd_queue_capacity") == 1


def test_a_request_beyond_the_queue_gets_503_moves_the_rejected_counter_and_fails_ready(
    server: LiveServer,
) -> None:
    generate(server, 1)
    before = scrape(server.url)
    body = {"model": MODEL, "prompt": COUNTING, "options": {"num_predict": 400, "temperature": 0}}
    waiting: list[httpx.Response] = []
    with httpx.Client(base_url=server.url, timeout=CLIENT_TIMEOUT) as client:
        with client.stream("POST", "/api/generate", json=body) as holder:
            lines = holder.iter_lines()  # kept: a dropped iterator closes the response
            next(lines)  # it holds the only slot now
            # the second waits for that slot: the queue of one is full
            second = threading.Thread(target=lambda: waiting.append(httpx.post(
                f"{server.url}/api/generate", json={**body, "options": {"num_predict": 1}},
                timeout=CLIENT_TIMEOUT)))
            second.start()
            ready = _wait_ready(server, 503)
            assert ready.json() == {"status": "queue full"}
            assert httpx.get(f"{server.url}/health").status_code == 200
            third = httpx.post(f"{server.url}/api/generate", json=body, timeout=CLIENT_TIMEOUT)
            assert third.status_code == 503
            assert "maximum pending requests exceeded" in third.json()["error"]
        second.join(CLIENT_TIMEOUT)  # the holder went away, so the second ran
    assert waiting and waiting[0].status_code == 200
    after = scrape(server.url)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("llmd_requests_rejected_total", reason="queue_full") == 1
    assert moved("llmd_requests_total", route="/api/generate", model=MODEL, status="5xx") == 1
    assert _wait_ready(server, 200).json() == {"status": "ready"}


def _wait_ready(server: LiveServer, status: int) -> httpx.Response:
    for _ in range(600):
        reply = httpx.get(f"{server.url}/ready", timeout=30)
        if reply.status_code == status:
            return reply
        threading.Event().wait(0.05)
    raise AssertionError(f"/ready never answered {status}")


def test_labels_never_carry_a_prompt_a_client_address_or_an_unknown_model(server: LiveServer) -> None:
    reply = server.http.post("/api/generate", json={"model": "no-such-model:7b", "prompt": "secret"})
    assert reply.status_code == 404
    text = httpx.get(f"{server.url}/metrics").text
    assert "no-such-model" not in text and "secret" not in text and "127.0.0.1" not in text
    assert value(scrape(server.url), "llmd_requests_total", route="/api/generate", model="",
                 status="4xx") >= 1


def test_promtool_accepts_a_scrape(server: LiveServer) -> None:
    generate(server, 2)
    text = httpx.get(f"{server.url}/metrics").text
    checked = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                             text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.strip() == "" and checked.stderr.strip() == "", "lint findings"


def test_prometheus_scrapes_the_counters_and_a_histogram_quantile(
    server: LiveServer, prometheus: Prometheus,
) -> None:
    # first a scrape from before the chats, so that they show as an increase
    prometheus.wait_for('up{job="llmd"}', lambda r: bool(r) and r[0]["value"][1] == "1")
    before = value(scrape(server.url), "llmd_time_to_first_token_seconds_count", model=MODEL)
    prometheus.wait_for(f'llmd_time_to_first_token_seconds_count{{model="{MODEL}"}}',
                        lambda r: bool(r) and float(r[0]["value"][1]) == before)
    for n in (3, 5, 7):
        server.http.post("/api/chat", json={
            "model": MODEL, "stream": False, "options": {"num_predict": n, "temperature": 0},
            "messages": [{"role": "user", "content": f"Name {n} colours."}]})
    ours = scrape(server.url)
    generated = value(ours, "llmd_generated_tokens_total", model=MODEL)
    ttfts = value(ours, "llmd_time_to_first_token_seconds_count", model=MODEL)
    assert generated > 0 and ttfts == before + 3

    prometheus.wait_for(f'llmd_generated_tokens_total{{model="{MODEL}"}}',
                        lambda r: bool(r) and float(r[0]["value"][1]) == generated)
    prometheus.wait_for(f'llmd_time_to_first_token_seconds_count{{model="{MODEL}"}}',
                        lambda r: bool(r) and float(r[0]["value"][1]) == ttfts)
    chat = 'llmd_requests_total{route="/api/chat",status="2xx",model="smollm2:135m"}'
    assert float(prometheus.query(chat)[0]["value"][1]) == 3
    quantile = ('histogram_quantile(0.95, sum by (le) '
                f'(increase(llmd_time_to_first_token_seconds_bucket{{model="{MODEL}"}}[5m])))')
    result = prometheus.wait_for(quantile, lambda r: bool(r) and r[0]["value"][1] != "NaN")
    p95 = float(result[0]["value"][1])
    assert math.isfinite(p95) and 0 < p95 <= 600  # within the buckets: 10 ms to 10 minutes


def test_the_alert_rules_load_into_prometheus_and_evaluate(prometheus: Prometheus) -> None:
    def healthy(groups: list[dict[str, object]]) -> bool:
        rules = [r for g in groups for r in g["rules"]]  # type: ignore[attr-defined]
        return bool(rules) and all(r.get("health") == "ok" for r in rules)

    for _ in range(120):
        groups = prometheus.api("rules")["groups"]
        if healthy(groups):
            break
        threading.Event().wait(0.5)
    names = {r["name"] for g in groups for r in g["rules"]}
    assert healthy(groups), groups
    assert {"LlmdRunnerCrashLoop", "LlmdQueueNearFull", "LlmdTimeToFirstTokenHigh",
            "LlmdMemoryBudgetNearFull"} <= names


def test_the_dashboard_and_the_rules_ask_only_for_metrics_llmd_exports(
    server: LiveServer, prometheus: Prometheus,
) -> None:
    exported = set()
    for line in httpx.get(f"{server.url}/metrics").text.splitlines():
        if line.startswith("# TYPE "):  # also the families no event has created a series of yet
            _, _, name, kind = line.split()
            suffixes = ("_bucket", "_count", "_sum") if kind == "histogram" else ("",)
            exported |= {name + suffix for suffix in suffixes}
    dashboard = json.loads((CONF / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    rules = yaml.safe_load((CONF / "llmd-alerts.yml").read_text())
    exprs += [r["expr"] for g in rules["groups"] for r in g["rules"]]
    assert len(exprs) > 20
    for expr in exprs:
        for name in re.findall(r"\b(?:llmd|process)_\w+", expr):
            assert name in exported, (name, expr)
        # and Prometheus parses it, with Grafana's variables filled in
        concrete = expr.replace("$__rate_interval", "1m").replace("$job", ".*").replace(
            "$instance", ".*")
        prometheus.query(concrete)


def test_a_runner_killed_by_a_signal_moves_the_crash_counter_for_that_signal(server: LiveServer) -> None:
    generate(server, 1)
    before = scrape(server.url)
    pids = re.findall(r"model loaded .*?PID=(\d+)", server.stderr())
    os.kill(int(pids[-1]), signal.SIGKILL)
    for _ in range(600):
        after = scrape(server.url)
        if value(after, "llmd_models_loaded") == 0:
            break
        threading.Event().wait(0.05)
    crashes = {"model": MODEL, "signal": "SIGKILL"}
    assert (value(after, "llmd_runner_crashes_total", **crashes)
            - value(before, "llmd_runner_crashes_total", **crashes)) == 1
    assert value(after, "llmd_models_loaded") == 0
    assert generate(server, 2)[-1]["done"] is True  # the next request loads it again


def test_a_body_over_the_limit_moves_the_rejected_counter_for_too_large(server: LiveServer) -> None:
    before = value(scrape(server.url), "llmd_requests_rejected_total", reason="too_large")
    answer = server.http.post("/api/generate", content=b"x" * (33 << 20),
                              headers={"content-type": "application/json"})
    assert answer.status_code == 413
    after = value(scrape(server.url), "llmd_requests_rejected_total", reason="too_large")
    assert after - before == 1
