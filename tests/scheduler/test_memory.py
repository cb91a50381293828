"""The memory estimate and budget."""

from __future__ import annotations

from pathlib import Path

import pytest
from llmd import memory
from llmd.config import Config
from llmd.runner.request import LoadOptions

METADATA: dict[str, object] = {
    "general.architecture": "llama",
    "llama.block_count": 30,
    "llama.embedding_length": 576,
    "llama.attention.head_count": 9,
    "llama.attention.head_count_kv": 3,
    "llama.vocab_size": 49152,
}


def test_the_kv_cache_grows_with_num_ctx_times_num_parallel() -> None:
    one = memory.estimate(0, METADATA, LoadOptions(num_ctx=2048, num_parallel=1))
    four = memory.estimate(0, METADATA, LoadOptions(num_ctx=2048, num_parallel=4))
    # f16 K and V: layers × cells × kv heads × (key + value head size) × 2 bytes
    per_cell = 30 * 3 * (64 + 64) * 2
    assert four - one == 3 * 2048 * per_cell


def test_a_quantized_kv_cache_shrinks_the_estimate_by_its_bytes_per_value() -> None:
    def kv(kind: str) -> int:
        load = LoadOptions(num_ctx=4096, kv_cache_type=kind, flash_attention=True)
        return memory.estimate(0, METADATA, load) - memory.estimate(
            0, METADATA, LoadOptions(num_ctx=4, kv_cache_type=kind, flash_attention=True))

    assert kv("q8_0") == pytest.approx(kv("f16") * 34 / 64, rel=0.01)
    assert kv("q4_0") == pytest.approx(kv("f16") * 18 / 64, rel=0.01)


def test_flash_attention_leaves_the_attention_scores_out_of_the_compute_buffer() -> None:
    off = memory.estimate(0, METADATA, LoadOptions(num_ctx=8192, flash_attention=False))
    on = memory.estimate(0, METADATA, LoadOptions(num_ctx=8192, flash_attention=True))
    assert off - on == 4 * 512 * 9 * 8192


def test_the_prompt_cache_counts_in_the_estimate() -> None:
    base = memory.estimate(0, METADATA, LoadOptions())
    assert memory.estimate(0, METADATA, LoadOptions(prompt_cache=10**8)) == base + 10**8


def test_without_ollama_num_parallel_a_model_gets_four_slots_when_they_fit() -> None:
    load = LoadOptions(num_ctx=4096, num_parallel=0)
    roomy = memory.resolve(10**8, METADATA, load, Config(), 16 * 2**30)
    assert roomy.num_parallel == 4
    one = memory.estimate(10**8, METADATA, LoadOptions(num_ctx=4096, num_parallel=1))
    tight = memory.resolve(10**8, METADATA, load, Config(), one + 1)
    assert tight.num_parallel == 1
    explicit = memory.resolve(10**8, METADATA, LoadOptions(num_parallel=2), Config(), 16 * 2**30)
    assert explicit.num_parallel == 2


def test_the_default_prompt_cache_is_a_share_of_the_budget_that_still_fits() -> None:
    load = LoadOptions(num_ctx=2048, num_parallel=1)
    budget = 16 * 2**30
    resolved = memory.resolve(10**8, METADATA, load, Config(), budget)
    assert resolved.prompt_cache == budget // 10
    assert memory.estimate(10**8, METADATA, resolved) <= budget
    small = memory.estimate(10**8, METADATA, load) + 1000
    assert memory.resolve(10**8, METADATA, load, Config(), small).prompt_cache == 1000
    off = memory.resolve(10**8, METADATA, load, Config(prompt_cache=0), budget)
    assert off.prompt_cache == 0
    kv = memory.resolve(10**8, METADATA, load, Config(kv_cache_type="q8_0"), budget)
    assert kv.kv_cache_type == "q8_0"


def test_the_weights_count_in_full() -> None:
    base = memory.estimate(0, METADATA, LoadOptions())
    assert memory.estimate(10**9, METADATA, LoadOptions()) == base + 10**9


def test_an_embedding_model_counts_its_embedding_context() -> None:
    # llama.cpp reserves 90 MiB of KV and 809 MiB of compute for SmolLM2's embedding context at
    # 4096 tokens: one ubatch spans the whole input, and the output layer runs over all of it.
    estimate = memory.estimate(0, METADATA, LoadOptions(num_ctx=4096, embedding=True))
    assert estimate > (90 + 809) * 2**20
    assert memory.embedding_context(METADATA, 4096) > (90 + 809) * 2**20


def test_lora_adapters_count_with_the_weights(gguf_path: Path, tmp_path: Path) -> None:
    adapter = tmp_path / "lora.gguf"
    adapter.write_bytes(b"\0" * 4096)
    plain = memory.estimate_model(gguf_path, METADATA, LoadOptions())
    adapted = memory.estimate_model(gguf_path, METADATA, LoadOptions(adapters=(str(adapter),)))
    assert adapted - plain == 4096


def test_the_estimate_covers_what_a_real_runner_holds(gguf_path: Path) -> None:
    # Measured resident size of a SmolLM2 runner at num_ctx 4096: about 250 MiB.
    assert (
        memory.estimate_model(gguf_path, METADATA, LoadOptions(num_ctx=4096))
        > 250 * 2**20
    )


def test_max_memory_is_the_budget_when_set() -> None:
    assert memory.budget(Config(max_memory=123456789)) == 123456789


def test_without_max_memory_the_budget_is_a_fraction_of_what_is_available() -> None:
    whole = memory.budget(Config(memory_fraction=1.0))
    half = memory.budget(Config(memory_fraction=0.5))
    assert whole > 0
    assert half == pytest.approx(whole / 2, rel=0.05)


def test_a_cgroup_v2_limit_caps_what_is_available(tmp_path: Path) -> None:
    proc = tmp_path / "cgroup"
    proc.write_text("0::/system.slice/llmd.service\n")
    group = tmp_path / "fs" / "system.slice" / "llmd.service"
    group.mkdir(parents=True)
    (group / "memory.max").write_text("1073741824\n")
    (group / "memory.current").write_text("73741824\n")
    assert memory.cgroup_available(tmp_path / "fs", proc) == 1_000_000_000
    (group / "memory.max").write_text("max\n")
    assert memory.cgroup_available(tmp_path / "fs", proc) is None


def test_a_cgroup_v1_limit_caps_what_is_available(tmp_path: Path) -> None:
    proc = tmp_path / "cgroup"
    proc.write_text("4:memory:/llmd\n3:cpu,cpuacct:/\n")
    group = tmp_path / "fs" / "memory" / "llmd"
    group.mkdir(parents=True)
    (group / "memory.limit_in_bytes").write_text("2000\n")
    (group / "memory.usage_in_bytes").write_text("500\n")
    assert memory.cgroup_available(tmp_path / "fs", proc) == 1500
    (group / "memory.limit_in_bytes").write_text(str(2**63 - 4096))
    assert memory.cgroup_available(tmp_path / "fs", proc) is None


@pytest.mark.parametrize(
    ("size", "text"),
    [(512, "512 B"), (64 * 2**20, "64.0 MiB"), (3 * 2**30 // 2, "1.5 GiB")],
)
def test_sizes_read_as_ollama_prints_them(size: int, text: str) -> None:
    assert memory.format_bytes(size) == text
