"""Running a generate, chat or embed request: resolve the model, check it can do what is asked,
lease a runner, render the prompt, and yield typed ``Chunk``/``Final`` items (``values.py``).

Everything that can be refused is refused before the first item, so the API answers it with a
status code; an error after that reaches the client as an in-stream error. The API handlers
only parse and render; native and OpenAI routes share these functions.
"""

from __future__ import annotations

import dataclasses
import math
import secrets
import string
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from llmd.inference import prompt as prompts
from llmd.config import Config
from llmd.errors import (
    InvalidModelName,
    InvalidRequest,
    ModelNotFound,
    UnsupportedCapability,
)
from llmd.inference.values import (
    ChatRequest,
    Chunk,
    Embeddings,
    EmbedRequest,
    Final,
    GenerateRequest,
    Output,
    Sampling,
    ToolCall,
)
from llmd.runner.options import BuiltOptions, build_options
from llmd.runner import grammar
from llmd.runner.request import Completed, CompletionRequest, TextDelta
from llmd.scheduler import Lease, Scheduler
from llmd.store import Model, ModelName, Store
from llmd.inference.thinking import ThinkingParser, opens_thinking

_ID_ALPHABET = string.ascii_lowercase + string.digits


def tool_call_id() -> str:
    """Eight characters of [a-z0-9], as Ollama's routes.go toolCallId makes them."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(8))


@dataclass(frozen=True, slots=True)
class Services:
    config: Config
    store: Store
    scheduler: Scheduler


async def resolve(store: Store, name: str, not_found: str = "model '{}' not found") -> Model:
    """The model ``name`` names; ModelNotFound with Ollama's ``model '<as given>' not found``."""
    try:
        return await store.get(ModelName.parse(name))
    except (InvalidModelName, ModelNotFound):
        raise ModelNotFound(not_found.format(name)) from None


def _full_name(model: Model) -> str:
    n = model.name
    return f"{n.host}/{n.namespace}/{n.model}:{n.tag}"


def check_capabilities(
    model: Model, requested: str, *, think: object = None, suffix: bool = False,
    images: bool = False, tools: bool = False,
) -> None:
    """Refuse what the model cannot do, in Ollama's words for each case."""
    caps = model.capabilities
    if "completion" not in caps:
        raise UnsupportedCapability(f'"{requested}" does not support generate')
    if think not in (None, False) and "thinking" not in caps:
        raise UnsupportedCapability(f'"{requested}" does not support thinking')
    if suffix and "insert" not in caps:
        raise UnsupportedCapability(f"{_full_name(model)} does not support insert")
    if tools and "tools" not in caps:
        raise UnsupportedCapability(f"{_full_name(model)} does not support tools")
    if images and model.projectors:
        raise UnsupportedCapability(
            "image input is not supported by llmd: this model's vision projector is not used"
        )
    if images and "vision" not in caps:
        raise UnsupportedCapability("this model is missing data required for image input")


def options_for(config: Config, model: Model, params: Sampling) -> BuiltOptions:
    """Runner and sampling options for a request, with ``format`` compiled to a grammar."""
    built = build_options(
        model.parameters, params.options,
        default_num_ctx=config.context_length, num_parallel=config.num_parallel,
    )
    if params.format is None:
        return built
    text = grammar.JSON_GBNF if params.format == "json" else grammar.json_schema_to_gbnf(params.format)
    return BuiltOptions(built.load, dataclasses.replace(built.sampling, grammar=text))


async def _load_or_unload(
    services: Services, model: Model, built: BuiltOptions, keep_alive: float | None
) -> Final:
    """An empty prompt: load the model (``done_reason: load``), or with keep_alive 0 unload it."""
    if keep_alive == 0:
        await services.scheduler.unload(model)
        return Final("unload")
    await services.scheduler.load(model, built.load, keep_alive)
    return Final("load")  # Ollama answers a load with no metrics at all


def _final(done: Completed, started: int, load_ns: int, with_context: bool) -> Final:
    return Final(
        done_reason=done.done_reason,
        total_duration=time.monotonic_ns() - started,
        load_duration=load_ns,
        prompt_eval_count=done.prompt_eval_count,
        prompt_cached=done.prompt_cached,
        prompt_eval_duration=done.prompt_eval_duration,
        eval_count=done.eval_count,
        eval_duration=done.eval_duration,
        context=done.context if with_context else None,
        stop_sequence=done.stop_sequence,
    )


def _completion(prompt: str, built: BuiltOptions, params: Sampling, **extra: Any) -> CompletionRequest:
    return CompletionRequest(
        prompt=prompt, sampling=built.sampling, logprobs=params.logprobs or params.top_logprobs > 0,
        top_logprobs=params.top_logprobs, truncate=params.truncate, shift=params.shift, **extra,
    )


def loads_only(req: GenerateRequest | ChatRequest) -> bool:
    """A request with nothing to generate: it loads (or with keep_alive 0 unloads) the model."""
    if isinstance(req, ChatRequest):
        return not req.messages
    return not req.prompt and not req.images


async def generate(services: Services, req: GenerateRequest) -> AsyncIterator[Output]:
    started = time.monotonic_ns()
    model = await resolve(services.store, req.model)
    check_capabilities(model, req.model, think=req.params.think, suffix=bool(req.suffix),
                       images=bool(req.images))
    built = options_for(services.config, model, req.params)
    if loads_only(req):
        yield await _load_or_unload(services, model, built, req.params.keep_alive)
        return
    text = req.prompt if req.raw else prompts.generate_prompt(model, req)
    completion = _completion(text, built, req.params, context=req.context,
                             add_special=not req.context)
    splitter = _Splitter(_thinking(model, req.params, text), None)
    async with services.scheduler.acquire(model, built.load, req.params.keep_alive) as lease:
        async for item in _outputs(lease, completion, splitter):
            yield item if isinstance(item, Chunk) else _final(
                item, started, lease.load_duration, not req.raw)


def _relaxed(model: Model, req: ChatRequest) -> ChatRequest:
    if req.relax_thinking and req.params.think is not None and "thinking" not in model.capabilities:
        return dataclasses.replace(req, params=dataclasses.replace(req.params, think=None))
    return req


async def chat(services: Services, req: ChatRequest) -> AsyncIterator[Output]:
    started = time.monotonic_ns()
    model = await resolve(services.store, req.model)
    req = _relaxed(model, req)
    check_capabilities(model, req.model, think=req.params.think, tools=bool(req.tools),
                       images=any(m.images for m in req.messages))
    built = options_for(services.config, model, req.params)
    if loads_only(req):
        yield await _load_or_unload(services, model, built, req.params.keep_alive)
        return
    async with services.scheduler.acquire(model, built.load, req.params.keep_alive) as lease:
        text = await prompts.chat_prompt(
            model, req, lease.tokenize, lease.context_length, built.sampling.num_predict)
        splitter = _Splitter(_thinking(model, req.params, text), prompts.tool_parser(model, req.tools))
        completion = _completion(text, built, req.params)
        async for item in _outputs(lease, completion, splitter):
            yield item if isinstance(item, Chunk) else _final(
                item, started, lease.load_duration, False)


async def count_tokens(services: Services, req: ChatRequest) -> int:
    """How many tokens the whole rendered prompt of ``req`` is, as the model's tokenizer counts."""
    model = await resolve(services.store, req.model)
    req = _relaxed(model, req)
    check_capabilities(model, req.model, think=req.params.think, tools=bool(req.tools),
                       images=any(m.images for m in req.messages))
    built = options_for(services.config, model, req.params)
    whole = dataclasses.replace(req, params=dataclasses.replace(req.params, truncate=False))
    async with services.scheduler.acquire(model, built.load, req.params.keep_alive) as lease:
        text = await prompts.chat_prompt(model, whole, lease.tokenize, lease.context_length)
        return len(await lease.tokenize(text, True))  # with BOS, as a generation adds it


def _thinking(model: Model, params: Sampling, prompt: str) -> ThinkingParser | None:
    # A thinking model thinks unless told not to (Ollama's default for an absent `think`).
    if "thinking" in model.capabilities and params.think is not False:
        return ThinkingParser(prefilled=opens_thinking(prompt))
    return None


class _Splitter:
    """Model text into Chunks: the reasoning split off first, then tool calls parsed out."""

    def __init__(self, thinking: ThinkingParser | None, tools: prompts.ToolCallParser | None) -> None:
        self._thinking = thinking
        self._tools = tools

    def _chunk(self, thought: str, text: str, final: bool, event: TextDelta | None) -> Chunk | None:
        calls: tuple[ToolCall, ...] = ()
        if self._tools is not None:
            content, calls = self._tools.feed(text)
            if final:
                rest, more = self._tools.flush()
                content, calls = content + rest, calls + more
        else:
            content = text
        logprobs = event.logprobs if event else ()
        if not (thought or content or calls or logprobs):
            return None
        return Chunk(content=content, thinking=thought, tool_calls=_with_ids(calls), logprobs=logprobs)

    def feed(self, event: TextDelta) -> Chunk | None:
        thought, text = self._thinking.feed(event.text) if self._thinking else ("", event.text)
        return self._chunk(thought, text, False, event)

    def flush(self) -> Chunk | None:
        thought, text = self._thinking.flush() if self._thinking else ("", "")
        return self._chunk(thought, text, True, None)


async def _outputs(
    lease: Lease, completion: CompletionRequest, splitter: _Splitter
) -> AsyncIterator[Chunk | Completed]:
    async for event in lease.generate(completion):
        if isinstance(event, TextDelta):
            chunk = splitter.feed(event)
        else:
            chunk = splitter.flush()
        if chunk is not None:
            yield chunk
        if isinstance(event, Completed):
            yield event


def _with_ids(calls: Sequence[ToolCall]) -> tuple[ToolCall, ...]:
    return tuple(c if c.id else dataclasses.replace(c, id=tool_call_id()) for c in calls)


def _normalise(vector: Sequence[float]) -> tuple[float, ...]:
    norm = math.sqrt(sum(v * v for v in vector))
    return tuple(v / norm for v in vector) if norm > 0 else tuple(vector)


async def embed(services: Services, req: EmbedRequest) -> Embeddings:
    """L2-normalised embeddings; with ``dimensions`` sliced, then normalised again (Ollama's)."""
    started = time.monotonic_ns()
    # the embed handlers word it as handleScheduleError does: %q, and a hint
    model = await resolve(services.store, req.model, 'model "{}" not found, try pulling it first')
    built = build_options(
        model.parameters, req.options,
        default_num_ctx=services.config.context_length, num_parallel=services.config.num_parallel,
    )
    if not req.inputs:
        load_ns = await services.scheduler.load(model, built.load, req.keep_alive)
        return Embeddings((), 0, time.monotonic_ns() - started, load_ns)
    async with services.scheduler.acquire(model, built.load, req.keep_alive) as lease:
        if not req.truncate:
            for text in req.inputs:
                if len(await lease.tokenize(text, True)) > lease.context_length:
                    raise InvalidRequest("the input length exceeds the context length")
        result = await lease.embed(list(req.inputs), req.truncate)
        load_ns = lease.load_duration
    vectors = result.embeddings
    if req.dimensions and req.dimensions < min((len(v) for v in vectors), default=0):
        vectors = tuple(_normalise(v[: req.dimensions]) for v in vectors)
    return Embeddings(tuple(vectors), result.prompt_eval_count, time.monotonic_ns() - started, load_ns)
