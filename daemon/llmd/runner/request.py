"""What the API layer asks of a runner, and what comes back: typed, transport-free values.

The API validates JSON into these at the edge; the scheduler and runner handle nothing else.
``runner/protocol.py`` turns them into frames on the socketpair and back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True, slots=True)
class LoadOptions:
    """Options that shape the llama.cpp context: a change means a reload (Ollama's Runner options)."""

    num_ctx: int = 4096
    num_batch: int = 512
    num_gpu: int = -1
    main_gpu: int = 0
    use_mmap: bool | None = None
    num_thread: int = 0
    num_parallel: int = 1  # 0: the scheduler chooses from the memory budget
    embedding: bool = False  # an embedding model: the runner makes only an embedding context
    adapters: tuple[str, ...] = ()  # LoRA GGUF paths, applied in this order
    kv_cache_type: str = "f16"  # f16, q8_0 or q4_0 (OLLAMA_KV_CACHE_TYPE)
    flash_attention: bool | None = None  # None: llama.cpp's auto
    prompt_cache: int = 0  # bytes of saved sequence states the runner may keep; 0: none


@dataclass(frozen=True, slots=True)
class SamplingOptions:
    """Per-request sampling, built into a llama.cpp sampler chain in the runner."""

    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.9
    min_p: float = 0.0
    typical_p: float = 1.0
    repeat_last_n: int = 64
    repeat_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    seed: int = -1  # -1: random
    num_predict: int = -1  # -1: until stop or the context is full
    num_keep: int = 4
    stop: tuple[str, ...] = ()
    grammar: str | None = None  # GBNF; the API builds it from `format`


@dataclass(frozen=True, slots=True)
class CompletionRequest:
    """One generation: the prompt is rendered text (templates run in the main process)."""

    prompt: str
    sampling: SamplingOptions = field(default_factory=SamplingOptions)
    context: tuple[int, ...] = ()  # token ids from an earlier /api/generate, evaluated first
    add_special: bool = True  # add BOS as the model's tokenizer wants
    logprobs: bool = False
    top_logprobs: int = 0
    truncate: bool = True  # drop the oldest prompt tokens beyond num_ctx instead of failing
    shift: bool = True  # a full context drops old tokens and goes on, instead of ending (length)


@dataclass(frozen=True, slots=True)
class TokenLogprob:
    token: str
    logprob: float
    bytes: tuple[int, ...] = ()
    top_logprobs: tuple[TokenLogprob, ...] = ()


@dataclass(frozen=True, slots=True)
class TextDelta:
    """Newly generated text; a multi-byte character is never split across deltas."""

    text: str
    logprobs: tuple[TokenLogprob, ...] = ()


DoneReason = Literal["stop", "length"]


@dataclass(frozen=True, slots=True)
class Completed:
    """The last event of a generation. Durations are nanoseconds, as Ollama reports them."""

    done_reason: DoneReason
    prompt_eval_count: int  # prompt tokens evaluated; those served from a cache are not counted
    prompt_eval_duration: int
    eval_count: int
    eval_duration: int
    context: tuple[int, ...] = ()  # prompt + output token ids, for /api/generate's `context`
    prompt_cached: int = 0  # prompt tokens whose KV came from the slot or the prompt cache
    stop_sequence: str = ""  # the stop string that ended it (Anthropic reports which)


CompletionEvent = TextDelta | Completed


@dataclass(frozen=True, slots=True)
class EmbeddingResult:
    embeddings: tuple[tuple[float, ...], ...]  # L2-normalised, one per input
    prompt_eval_count: int
