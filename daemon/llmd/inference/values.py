"""What an inference request asks for and what comes back, as typed values below the API.

``api/inference_schemas.py`` builds the requests from native JSON, and ``api/openai_convert.py``
and its siblings from OpenAI and Anthropic JSON; ``inference/run.py`` runs them and yields the
chunks; the API renders chunks back to JSON.
Tool schemas, tool-call arguments and ``format`` schemas stay JSON values: they are data that a
template or a grammar reads, not fields llmd interprets.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from llmd.runner.request import TokenLogprob

ThinkLevel = Literal["low", "medium", "high", "max"]
Think = bool | ThinkLevel | None  # None: not set by the request
JsonFormat = Literal["json"]
Format = JsonFormat | Mapping[str, Any] | None  # "json", a JSON schema, or free text


@dataclass(frozen=True, slots=True)
class ToolCall:
    name: str
    arguments: Mapping[str, Any]  # a JSON object, key order kept
    id: str = ""
    index: int = 0


@dataclass(frozen=True, slots=True)
class Message:
    role: str  # system, user, assistant or tool (lower-cased at the edge)
    content: str = ""
    thinking: str = ""
    images: tuple[bytes, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()
    tool_name: str = ""
    tool_call_id: str = ""


@dataclass(frozen=True, slots=True)
class Tool:
    """A tool definition as the client sent it: ``{"type": "function", "function": {...}}``."""

    type: str
    function: Mapping[str, Any]

    @property
    def name(self) -> str:
        return str(self.function.get("name", ""))


@dataclass(frozen=True, slots=True)
class Sampling:
    """What every generation request carries besides its prompt."""

    options: Mapping[str, Any] = field(default_factory=dict)  # checked by llmd.runner.options
    keep_alive: float | None = None  # seconds; None keeps the runner's current duration
    format: Format = None
    think: Think = None
    truncate: bool = True
    shift: bool = True
    logprobs: bool = False
    top_logprobs: int = 0


@dataclass(frozen=True, slots=True)
class GenerateRequest:
    model: str  # as the client spelled it, for Ollama's "model '<x>' not found"
    prompt: str = ""
    suffix: str = ""
    system: str | None = None
    template: str | None = None
    context: tuple[int, ...] = ()
    raw: bool = False
    images: tuple[bytes, ...] = ()
    stream: bool = True
    params: Sampling = field(default_factory=Sampling)


@dataclass(frozen=True, slots=True)
class ChatRequest:
    model: str
    messages: tuple[Message, ...] = ()
    tools: tuple[Tool, ...] = ()
    stream: bool = True
    params: Sampling = field(default_factory=Sampling)
    # Anthropic clients ask every model to think; Ollama drops `think` where the model cannot
    # rather than refusing the request (its relax_thinking)
    relax_thinking: bool = False


@dataclass(frozen=True, slots=True)
class EmbedRequest:
    model: str
    inputs: tuple[str, ...]
    truncate: bool = True
    dimensions: int = 0  # 0: the model's full length
    options: Mapping[str, Any] = field(default_factory=dict)
    keep_alive: float | None = None


DoneReason = Literal["stop", "length", "load", "unload"]


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of the answer; ``tool_calls`` arrive whole, once parsed out of the text."""

    content: str = ""
    thinking: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    logprobs: tuple[TokenLogprob, ...] = ()


@dataclass(frozen=True, slots=True)
class Final:
    """The last item of every generation. Durations are nanoseconds, as Ollama reports them."""

    done_reason: DoneReason
    total_duration: int = 0
    load_duration: int = 0
    prompt_eval_count: int = 0  # evaluated; tokens served from a cache are in prompt_cached
    prompt_eval_duration: int = 0
    eval_count: int = 0
    eval_duration: int = 0
    context: tuple[int, ...] | None = None  # generate only, and never in raw mode
    prompt_cached: int = 0
    stop_sequence: str = ""  # the stop string that ended the generation, if one did


Output = Chunk | Final


@dataclass(frozen=True, slots=True)
class Embeddings:
    vectors: tuple[tuple[float, ...], ...]
    prompt_eval_count: int
    total_duration: int
    load_duration: int
