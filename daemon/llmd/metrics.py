"""Every ``llmd_`` Prometheus metric, defined once here and recorded through ``Metrics``' methods.

One ``Metrics`` per daemon holds its own registry (not prometheus-client's global one), is built by
``llmd.server``, handed to the Scheduler and to the app, and served at ``GET /metrics``. Callers
record what happened in words (``metrics.rejected("queue_full")``,
``metrics.runner_crashed(model, "SIGSEGV")``); what is a state, not an event (residency, the
queue, requests in flight) is read at scrape time from the sources the scheduler and the app
register, so nothing is kept in step by hand.

Labels stay bounded: a model name (only of models the scheduler has loaded), a route template,
a status class, and the small fixed sets of reasons below. Never a prompt, a client address or a
request id. With ``enabled`` false (config ``metrics: false``) every method returns at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from importlib import metadata

from prometheus_client import metrics as _pc
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import CollectorRegistry

import llmd

# A ``_created`` series beside every counter and histogram doubles the series for a start time
# that llmd_start_time_seconds already gives.
_pc.disable_created_metrics()

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4  # what every Prometheus release scrapes

# Why a request was refused before it ran: max_queue, a model cooling down after a crash loop, the
# request-size limit and the API-key check (each calls ``rejected`` where it refuses).
REJECT_REASONS = ("queue_full", "cooling_down", "too_large", "unauthorized", "key_busy")

# CPU serving spans milliseconds (a cached prompt, one token) to minutes (a long prompt on a busy
# machine, a large model loading from disk).
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600)
TOKEN_BUCKETS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1, 2.5, 5)
WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
LOAD_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300)


@dataclass(frozen=True, slots=True)
class ModelResidency:
    """One loaded model as the scheduler sees it at scrape time."""

    model: str
    size: int            # bytes charged to the memory budget
    slots: int
    slots_busy: int
    kv_cells: int        # num_ctx × slots
    kv_cells_used: int   # as the runner last reported


@dataclass(frozen=True, slots=True)
class Residency:
    models: tuple[ModelResidency, ...] = ()
    queued: int = 0
    max_queue: int = 0
    memory_budget: int = 0


class Generation:
    """One generation's timings, fed each event the runner sends (see ``Metrics.generation``)."""

    __slots__ = ("_metrics", "_model", "_since", "_first")

    def __init__(self, metrics: Metrics, model: str, since: float) -> None:
        self._metrics = metrics
        self._model = model
        self._since = since
        self._first = 0.0

    def token(self) -> None:
        """Text arrived; the first time, that is the time to first token."""
        if not self._first:
            self._first = time.perf_counter()
            self._metrics.ttft.labels(self._model).observe(self._first - self._since)

    def done(self, prompt_tokens: int, generated_tokens: int, cached_tokens: int = 0) -> None:
        """The generation ended with these counts (``cached_tokens`` of the prompt reused)."""
        now = time.perf_counter()
        if not self._first:
            self.token()
        elif generated_tokens > 1:
            # n tokens have n - 1 gaps between them; the first is TTFT's
            per_token = (now - self._first) / (generated_tokens - 1)
            self._metrics.tpot.labels(self._model).observe(per_token)
        self._metrics.tokens(self._model, prompt_tokens, generated_tokens, cached_tokens)


class _Unrecorded(Generation):
    __slots__ = ()

    def token(self) -> None:
        pass

    def done(self, prompt_tokens: int, generated_tokens: int, cached_tokens: int = 0) -> None:
        pass


class Metrics:
    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.registry = CollectorRegistry()
        self.started = time.time()
        # set by the Scheduler and the app: read at scrape time
        self.residency: Callable[[], Residency] = Residency
        self.in_flight: Callable[[], int] = lambda: 0
        self._models: set[str] = set()

        r = self.registry
        self.requests = _pc.Counter(
            "llmd_requests", "HTTP requests answered, by route template, model and status class.",
            ["route", "model", "status"], registry=r)
        self.request_seconds = _pc.Histogram(
            "llmd_request_duration_seconds", "HTTP request time to the last byte.",
            ["route", "model"], buckets=LATENCY_BUCKETS, registry=r)
        self.rejections = _pc.Counter(
            "llmd_requests_rejected", "Requests refused before they ran, by reason.",
            ["reason"], registry=r)
        for reason in REJECT_REASONS:
            self.rejections.labels(reason)  # present at 0 from the start, so rate() sees the first
        self.ttft = _pc.Histogram(
            "llmd_time_to_first_token_seconds",
            "From admission by the scheduler (queue wait and any model load included) to the "
            "first generated text.", ["model"], buckets=LATENCY_BUCKETS, registry=r)
        self.tpot = _pc.Histogram(
            "llmd_time_per_output_token_seconds",
            "Mean time between generated tokens after the first, one observation per request.",
            ["model"], buckets=TOKEN_BUCKETS, registry=r)
        self.queue_wait = _pc.Histogram(
            "llmd_queue_wait_seconds",
            "From admission to a runner slot, a model load the request waited for included.",
            ["model"], buckets=WAIT_BUCKETS, registry=r)
        self.load_seconds = _pc.Histogram(
            "llmd_model_load_seconds", "Time to start a runner and load a model.",
            ["model"], buckets=LOAD_BUCKETS, registry=r)
        self.prompt_tokens = _pc.Counter(
            "llmd_prompt_tokens", "Prompt tokens evaluated (not served from the cache).",
            ["model"], registry=r)
        self.cached_tokens = _pc.Counter(
            "llmd_prompt_tokens_cached", "Prompt tokens served from the runner's KV cache.",
            ["model"], registry=r)
        self.generated_tokens = _pc.Counter(
            "llmd_generated_tokens", "Tokens generated.", ["model"], registry=r)
        self.unloads = _pc.Counter(
            "llmd_model_unloads",
            "Models unloaded, by reason: evicted (to make room), expired (keep_alive), unloaded "
            "(asked to), reload (new load options), shutdown.", ["model", "reason"], registry=r)
        self.crashes = _pc.Counter(
            "llmd_runner_crashes",
            "Runner processes that died on their own, by signal (\"exit\" for a non-zero status).",
            ["model", "signal"], registry=r)
        self.build = _pc.Info(
            "llmd_build", "The llmd version, the llama-cpp-python build it runs and the CPU "
            "variant of ggml's backend the last runner loaded.", registry=r)
        self.build_info()
        ProcessCollector(registry=r)
        r.register(_StateCollector(self))

    # --- recording -----------------------------------------------------------------------------

    def request(self, route: str, model: str, status: int, seconds: float) -> None:
        """An HTTP request finished (the app's middleware calls this)."""
        if not self.enabled:
            return
        model = model if model in self._models else ""
        self.requests.labels(route, model, f"{status // 100}xx").inc()
        self.request_seconds.labels(route, model).observe(seconds)

    def rejected(self, reason: str) -> None:
        """A request refused before it ran: one of REJECT_REASONS."""
        if self.enabled:
            self.rejections.labels(reason).inc()

    def generation(self, model: str, since: float) -> Generation:
        """The timings of one generation admitted at ``since`` (``time.perf_counter()``)."""
        if not self.enabled:
            return _Unrecorded(self, model, since)
        return Generation(self, model, since)

    def tokens(self, model: str, prompt: int, generated: int = 0, cached: int = 0) -> None:
        """Token counts of a finished request; ``prompt`` counts every prompt token, ``cached``
        those the runner did not have to evaluate."""
        if not self.enabled:
            return
        self.prompt_tokens.labels(model).inc(max(0, prompt - cached))
        self.cached_tokens.labels(model).inc(cached)
        self.generated_tokens.labels(model).inc(generated)

    def queued(self, model: str, seconds: float) -> None:
        if self.enabled:
            self.queue_wait.labels(model).observe(seconds)

    def model_loaded(self, model: str, seconds: float) -> None:
        self._models.add(model)  # kept when disabled too: it bounds the request label
        if self.enabled:
            self.load_seconds.labels(model).observe(seconds)

    def model_unloaded(self, model: str, reason: str) -> None:
        if self.enabled:
            self.unloads.labels(model, reason).inc()

    def runner_crashed(self, model: str, signal: str) -> None:
        """A runner died on its own: ``signal`` is its name (SIGSEGV), "" for an exit status."""
        if self.enabled:
            self.crashes.labels(model, signal or "exit").inc()

    def build_info(self, cpu_variant: str = "unknown") -> None:
        """Set llmd_build_info; the runner's CPU variant once one has loaded."""
        try:
            llama = metadata.version("llama-cpp-python")
        except metadata.PackageNotFoundError:
            llama = "unknown"
        self.build.info({"version": llmd.__version__, "llama_cpp_python": llama,
                         "cpu_variant": cpu_variant})

    # --- exposition ----------------------------------------------------------------------------

    def exposition(self) -> bytes:
        """The registry in Prometheus' text format."""
        return generate_latest(self.registry)


class _StateCollector:
    """Gauges read from their sources when scraped, so they can never drift from the truth."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def describe(self) -> Iterable[Metric]:
        return list(self._families(Residency(), 0))

    def collect(self) -> Iterable[Metric]:
        return list(self._families(self._metrics.residency(), self._metrics.in_flight()))

    def _families(self, state: Residency, in_flight: int) -> Iterator[Metric]:
        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, value=value)

        yield gauge("llmd_start_time_seconds", "When this llmd started, in Unix time.",
                    self._metrics.started)
        yield gauge("llmd_requests_in_flight", "HTTP requests being served (probes left out).",
                    in_flight)
        yield gauge("llmd_requests_queued", "Requests waiting for a model load or a runner slot.",
                    state.queued)
        yield gauge("llmd_queue_capacity", "max_queue: requests beyond it get 503.",
                    state.max_queue)
        yield gauge("llmd_models_loaded", "Models resident now.", len(state.models))
        yield gauge("llmd_memory_budget_bytes", "Memory the scheduler may give to models.",
                    state.memory_budget)
        yield gauge("llmd_memory_used_bytes", "Memory charged to the loaded models.",
                    sum(m.size for m in state.models))
        per_model = (
            ("llmd_model_memory_bytes", "Memory charged to this model.", "size"),
            ("llmd_slots", "Parallel slots of the model's runner.", "slots"),
            ("llmd_slots_busy", "Slots running a request.", "slots_busy"),
            ("llmd_kv_cells", "KV cache cells of the model's context (num_ctx × slots).",
             "kv_cells"),
            ("llmd_kv_cells_used", "KV cache cells holding tokens.", "kv_cells_used"),
        )
        for name, doc, field in per_model:
            family = GaugeMetricFamily(name, doc, labels=["model"])
            for m in state.models:
                family.add_metric([m.model], getattr(m, field))
            yield family
