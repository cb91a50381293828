"""One live llmd for the module (one slot, a queue of one) with SmolLM2, and its /metrics read back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from harness import LiveServer, create_smollm2, live_server
from prometheus_client.parser import text_string_to_metric_families

MODEL = "smollm2:135m"
CONF = Path(__file__).resolve().parents[2] / "conf" / "monitoring"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    """Every sample of ``GET /metrics``, parsed by prometheus-client's own parser."""
    reply = httpx.get(f"{url}/metrics", timeout=30)
    assert reply.status_code == 200, reply.text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(reply.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, gguf_path: Path) -> Iterator[LiveServer]:
    env = {"OLLAMA_NUM_PARALLEL": "1", "OLLAMA_MAX_QUEUE": "1", "OLLAMA_CONTEXT_LENGTH": "1024"}
    with live_server(tmp_path_factory.mktemp("llmd"), env=env) as live:
        create_smollm2(live.url, gguf_path)
        yield live
