"""The main ↔ runner wire protocol: length-prefixed JSON frames on a socketpair.

A frame is a 4-byte big-endian length and a UTF-8 JSON object with a ``type`` tag, typed here the
way uvicorn types ASGI messages. The runner writes all the frames one decode step produced with a
single ``sendall``, and one ``deltas`` frame carries the text of every slot that moved in that step,
so the cost per token stays a few bytes of JSON rather than a syscall and a frame per token.

    main → runner: completion, cancel, embed, tokenize, detokenize, shutdown
    runner → main: loaded, deltas, done, usage, embedding, tokens, text, error
"""

from __future__ import annotations

import dataclasses
import json
import struct
from typing import Any, Literal, NotRequired, TypedDict

from llmd import errors
from llmd.runner.request import (
    Completed,
    CompletionRequest,
    SamplingOptions,
    TextDelta,
    TokenLogprob,
)

HEADER = struct.Struct(">I")
MAX_FRAME = 64 * 1024 * 1024


class LoadedMessage(TypedDict):
    type: Literal["loaded"]
    n_ctx: int  # per slot
    n_ctx_train: int
    n_parallel: int
    pid: int


class CompletionMessage(TypedDict):
    type: Literal["completion"]
    id: int
    request: dict[str, Any]


class CancelMessage(TypedDict):
    type: Literal["cancel"]
    id: int


class EmbedMessage(TypedDict):
    type: Literal["embed"]
    id: int
    inputs: list[str]
    truncate: bool


class TokenizeMessage(TypedDict):
    type: Literal["tokenize"]
    id: int
    text: str
    add_special: bool


class DetokenizeMessage(TypedDict):
    type: Literal["detokenize"]
    id: int
    tokens: list[int]


class ShutdownMessage(TypedDict):
    type: Literal["shutdown"]


class DeltasMessage(TypedDict):
    """Text for several requests at once: ``items`` is ``[id, text]`` or ``[id, text, logprobs]``."""

    type: Literal["deltas"]
    items: list[list[Any]]


class DoneMessage(TypedDict):
    type: Literal["done"]
    id: int
    done_reason: str
    prompt_eval_count: int
    prompt_eval_duration: int  # ns
    eval_count: int
    eval_duration: int  # ns
    context: list[int]
    prompt_cached: int  # prompt tokens not evaluated: their KV was cached
    stop_sequence: NotRequired[str]


class UsageMessage(TypedDict):
    """KV cells holding tokens, sent after a decode step that changed the count."""

    type: Literal["usage"]
    kv_cells_used: int


class EmbeddingMessage(TypedDict):
    """The vectors of some inputs of an embed request, in order; ``more`` until the last."""

    type: Literal["embedding"]
    id: int
    embeddings: list[list[float]]
    prompt_eval_count: int
    more: bool


class TokensMessage(TypedDict):
    type: Literal["tokens"]
    id: int
    tokens: list[int]


class TextMessage(TypedDict):
    type: Literal["text"]
    id: int
    text: str


class ErrorMessage(TypedDict):
    """A typed failure: ``error`` names an LlmdError subclass; ``id`` None is about the runner."""

    type: Literal["error"]
    id: int | None
    error: str
    message: str


Message = (
    LoadedMessage
    | CompletionMessage
    | CancelMessage
    | EmbedMessage
    | TokenizeMessage
    | DetokenizeMessage
    | ShutdownMessage
    | DeltasMessage
    | DoneMessage
    | UsageMessage
    | EmbeddingMessage
    | TokensMessage
    | TextMessage
    | ErrorMessage
)


# --- framing -------------------------------------------------------------------------------------


def encode(message: Message) -> bytes:
    body = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )
    return HEADER.pack(len(body)) + body


def decode(body: bytes) -> Message:
    value = json.loads(body)
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        raise ValueError("a runner frame must be a JSON object with a type")  # noqa: TRY004 - a protocol error, like bad JSON
    return value  # type: ignore[return-value]


class FrameBuffer:
    """Incremental decoder for the runner side, which reads a plain blocking socket.

    A frame over MAX_FRAME is skipped unread (its size goes to ``take_dropped``) rather than
    ending the stream: the frames after it are still good, and so are the runner's other
    requests.
    """

    def __init__(self) -> None:
        self._data = bytearray()
        self._skip = 0
        self._dropped: list[int] = []

    def take_dropped(self) -> list[int]:
        dropped, self._dropped = self._dropped, []
        return dropped

    def feed(self, data: bytes) -> list[Message]:
        if self._skip:
            skipped = min(self._skip, len(data))
            self._skip -= skipped
            data = data[skipped:]
        self._data += data
        out: list[Message] = []
        while len(self._data) >= HEADER.size:
            (size,) = HEADER.unpack_from(self._data)
            if size > MAX_FRAME:
                self._dropped.append(size)
                del self._data[: HEADER.size]
                skipped = min(size, len(self._data))
                del self._data[:skipped]
                self._skip = size - skipped
                continue
            end = HEADER.size + size
            if len(self._data) < end:
                break
            out.append(decode(bytes(self._data[HEADER.size : end])))
            del self._data[:end]
        return out


# --- typed values ↔ messages ---------------------------------------------------------------------


def request_to_wire(request: CompletionRequest) -> dict[str, Any]:
    wire = dataclasses.asdict(request)
    return wire


def request_from_wire(wire: dict[str, Any]) -> CompletionRequest:
    sampling = dict(wire["sampling"])
    sampling["stop"] = tuple(sampling.get("stop", ()))
    return CompletionRequest(
        prompt=wire["prompt"],
        sampling=SamplingOptions(**sampling),
        context=tuple(wire.get("context", ())),
        add_special=wire.get("add_special", True),
        logprobs=wire.get("logprobs", False),
        top_logprobs=wire.get("top_logprobs", 0),
        truncate=wire.get("truncate", True),
        shift=wire.get("shift", True),
    )


def logprobs_to_wire(values: tuple[TokenLogprob, ...]) -> list[Any]:
    return [
        [v.token, v.logprob, list(v.bytes), logprobs_to_wire(v.top_logprobs)]
        for v in values
    ]


def logprobs_from_wire(values: list[Any]) -> tuple[TokenLogprob, ...]:
    return tuple(
        TokenLogprob(token, logprob, tuple(raw), logprobs_from_wire(top))
        for token, logprob, raw, top in values
    )


def delta_from_item(item: list[Any]) -> TextDelta:
    logprobs = logprobs_from_wire(item[2]) if len(item) > 2 else ()
    return TextDelta(item[1], logprobs)


def done_message(job_id: int, done: Completed) -> DoneMessage:
    return {
        "type": "done",
        "id": job_id,
        "done_reason": done.done_reason,
        "prompt_eval_count": done.prompt_eval_count,
        "prompt_eval_duration": done.prompt_eval_duration,
        "eval_count": done.eval_count,
        "eval_duration": done.eval_duration,
        "context": list(done.context),
        "prompt_cached": done.prompt_cached,
        "stop_sequence": done.stop_sequence,
    }


def completed_from(message: DoneMessage) -> Completed:
    return Completed(
        done_reason="length" if message["done_reason"] == "length" else "stop",
        prompt_eval_count=message["prompt_eval_count"],
        prompt_eval_duration=message["prompt_eval_duration"],
        eval_count=message["eval_count"],
        eval_duration=message["eval_duration"],
        context=tuple(message["context"]),
        prompt_cached=message.get("prompt_cached", 0),
        stop_sequence=message.get("stop_sequence", ""),
    )


def error_message(job_id: int | None, exc: BaseException) -> ErrorMessage:
    name = type(exc).__name__ if isinstance(exc, errors.LlmdError) else "RunnerError"
    return {"type": "error", "id": job_id, "error": name, "message": str(exc)}


def error_from(message: ErrorMessage) -> errors.LlmdError:
    """The LlmdError a runner's error frame names; an unknown name is a generic RunnerError."""
    cls = getattr(errors, message.get("error", ""), None)
    if not (isinstance(cls, type) and issubclass(cls, errors.LlmdError)):
        cls = errors.RunnerError
    try:
        return cls(message.get("message", "runner error"))
    except TypeError:  # a class with a different constructor, e.g. ConfigError
        return errors.RunnerError(message.get("message", "runner error"))
