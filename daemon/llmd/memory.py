"""How much memory a runner will take, and how much all runners together may take.

The estimate comes from GGUF metadata before anything is loaded: the weights (the file is mapped
whole), the KV cache for ``num_ctx × num_parallel`` cells in its type (f16, q8_0 or q4_0),
llama.cpp's compute buffers, and the runner's prompt cache. The budget is ``max_memory`` when set,
else a fraction of what the machine (or the cgroup the service runs in, when systemd sets
``MemoryMax=``) has available. ``resolve`` fills in what the configuration left to llmd: the
number of slots and the size of the prompt cache.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from llmd.config import Config
from llmd.runner.request import LoadOptions

_F32 = 4
_F16 = 2
# Bytes per KV element: ggml's f16, and its q8_0 / q4_0 blocks of 32 values (34 and 18 bytes).
KV_BYTES = {"f16": float(_F16), "q8_0": 34 / 32, "q4_0": 18 / 32}
# Slots llmd gives a model when OLLAMA_NUM_PARALLEL is not set, the most first: several, so that a
# long request (a front end's background title request with no token limit) never blocks another
# user, as long as their KV cache fits.
AUTO_PARALLEL = (4, 2, 1)
# The prompt cache when prompt_cache is not set: this share of the budget, at most llama-server's
# own default (--cache-ram 8192 MiB), and never more than the budget leaves beside the model.
AUTO_CACHE_SHARE = 0.1
AUTO_CACHE_MAX = 8 * 1024**3
# llama.cpp's fixed costs beyond weights and KV: the process, ggml's graph and small buffers.
_OVERHEAD = 64 * 1024 * 1024


def _int(metadata: Mapping[str, object], key: str, default: int) -> int:
    value = metadata.get(key, default)
    if isinstance(
        value, (list, tuple)
    ):  # per-layer arrays (e.g. head_count_kv): take the largest
        value = max((v for v in value if isinstance(v, int)), default=default)
    return value if isinstance(value, int) and not isinstance(value, bool) else default


@dataclass(frozen=True, slots=True)
class _Shape:
    n_layer: int
    n_embd: int
    n_head: int
    kv_width: int  # K and V of one cell of one layer: head_count_kv × (key + value length)
    n_vocab: int

    @classmethod
    def of(cls, metadata: Mapping[str, object]) -> _Shape:
        arch = str(metadata.get("general.architecture", "llama"))
        n_embd = _int(metadata, f"{arch}.embedding_length", 0)
        n_head = max(1, _int(metadata, f"{arch}.attention.head_count", 1))
        n_head_kv = _int(metadata, f"{arch}.attention.head_count_kv", n_head)
        head_k = _int(metadata, f"{arch}.attention.key_length", n_embd // n_head)
        head_v = _int(metadata, f"{arch}.attention.value_length", n_embd // n_head)
        n_vocab = _int(metadata, f"{arch}.vocab_size", 0)
        if not n_vocab:
            tokens = metadata.get("tokenizer.ggml.tokens")
            # the store may keep long arrays unread, as a sized placeholder
            n_vocab = len(tokens) if hasattr(tokens, "__len__") else 32000
        return cls(_int(metadata, f"{arch}.block_count", 0), n_embd, n_head,
                   n_head_kv * (head_k + head_v), n_vocab)


def embedding_context(metadata: Mapping[str, object], num_ctx: int) -> int:
    """Bytes of the context a runner makes for embeddings (runner/embedding.py).

    Its own f16 KV cache of ``num_ctx`` cells, and a compute buffer for a whole input in one
    ubatch of ``num_ctx`` tokens, over which llama.cpp also computes the output layer: for
    SmolLM2 at 4096 tokens llama.cpp reserves 809 MiB, nearly all of it those logits.
    """
    shape = _Shape.of(metadata)
    kv = shape.n_layer * num_ctx * shape.kv_width * _F16
    return kv + _F32 * num_ctx * (shape.n_vocab + 8 * shape.n_embd)


def estimate(file_size: int, metadata: Mapping[str, object], load: LoadOptions) -> int:
    """Bytes a runner for this GGUF with these LoadOptions is expected to hold resident.

    ``file_size`` covers the weights and any LoRA adapters. An embedding model's runner holds
    only its embedding context; a model that generates gets one too on its first embed, which
    the scheduler then adds (``embedding_context``).
    """
    if load.embedding:
        return file_size + embedding_context(metadata, load.num_ctx) + _OVERHEAD
    shape = _Shape.of(metadata)
    n_parallel = max(1, load.num_parallel)
    n_ctx = load.num_ctx * n_parallel
    n_ubatch = min(max(load.num_batch, n_parallel), 512)
    # K and V, every layer, every cell: the KV cache llama.cpp allocates up front.
    kv = int(shape.n_layer * n_ctx * shape.kv_width * KV_BYTES.get(load.kv_cache_type, _F16))
    # Compute buffer: the logits of a ubatch, a few activations of width n_embd, and without flash
    # attention the attention scores of one layer for a ubatch against a sequence's context.
    scores = 0 if _flash(load) else shape.n_head * load.num_ctx
    compute = _F32 * n_ubatch * (shape.n_vocab + scores + 8 * shape.n_embd)
    return file_size + kv + compute + _OVERHEAD + load.prompt_cache


def _flash(load: LoadOptions) -> bool:
    # A quantized V cache makes llama.cpp turn flash attention on; "auto" may leave it off.
    return load.flash_attention is True or load.kv_cache_type != "f16"


def resolve(
    file_size: int, metadata: Mapping[str, object], load: LoadOptions, config: Config, budget: int
) -> LoadOptions:
    """``load`` with the configuration's KV settings, and the slots (``num_parallel`` 0) and the
    prompt cache that llmd chooses itself when they are not configured."""
    load = dataclasses.replace(
        load, kv_cache_type=config.kv_cache_type, flash_attention=config.flash_attention,
        prompt_cache=0,
    )
    if load.embedding:
        return dataclasses.replace(load, num_parallel=1)
    if load.num_parallel < 1:
        fits = [
            n for n in AUTO_PARALLEL
            if estimate(file_size, metadata, dataclasses.replace(load, num_parallel=n)) <= budget
        ]
        load = dataclasses.replace(load, num_parallel=fits[0] if fits else 1)
    cache = config.prompt_cache
    if cache is None:
        room = budget - estimate(file_size, metadata, load)
        cache = max(0, min(int(budget * AUTO_CACHE_SHARE), AUTO_CACHE_MAX, room))
    return dataclasses.replace(load, prompt_cache=cache)


def estimate_model(
    model_path: Path, metadata: Mapping[str, object], load: LoadOptions
) -> int:
    files = model_path.stat().st_size + sum(Path(p).stat().st_size for p in load.adapters)
    return estimate(files, metadata, load)


def file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0  # the load itself will report the missing file


# --- the budget ----------------------------------------------------------------------------------


def _meminfo_available(path: Path = Path("/proc/meminfo")) -> int:
    try:
        for line in path.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None  # "max" (v2) means no limit


def cgroup_available(
    root: Path = Path("/sys/fs/cgroup"), proc: Path = Path("/proc/self/cgroup")
) -> int | None:
    """Bytes left under our cgroup's memory limit (v2 memory.max, or v1 limit_in_bytes)."""
    try:
        lines = proc.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and controllers == "":
            base = root / path.lstrip("/")
            limit = _read_int(base / "memory.max")
            if limit is None:
                return None
            used = _read_int(base / "memory.current") or 0
            return max(0, limit - used)
        if "memory" in controllers.split(","):
            base = root / "memory" / path.lstrip("/")
            limit = _read_int(base / "memory.limit_in_bytes")
            # v1 reports "no limit" as a huge page-rounded number
            if limit is None or limit >= 1 << 60:
                return None
            used = _read_int(base / "memory.usage_in_bytes") or 0
            return max(0, limit - used)
    return None


def budget(config: Config, resident: int = 0) -> int:
    """Bytes all loaded runners together may take; ``resident`` is what the runners already
    loaded are estimated to hold, which the memory available now no longer includes."""
    if config.max_memory:
        return config.max_memory
    available = _meminfo_available()
    limited = cgroup_available()
    if limited is not None:
        available = min(available, limited)
    return int((available + resident) * config.memory_fraction)


def format_bytes(n: int) -> str:
    """Ollama's human sizes (format.HumanBytes2): "1.2 GiB", "512.0 MiB"."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{int(value)} B"
        value /= 1024
    return f"{n} B"
