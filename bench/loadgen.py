"""A streaming load generator for OpenAI-style ``/v1/chat/completions`` servers.

Every request streams server-sent events; each one is recorded as a :class:`Stream` with the time it
was sent, the arrival time of every chunk that carried text, and the completion token count the
server reported in its usage chunk (``stream_options.include_usage``), so servers that merge several
tokens into one chunk are still counted right.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

DONE = "[DONE]"

# Long-form requests that SmolLM2-135M answers at length, so that at temperature 0 a generation
# normally runs to max_tokens on either server: llmd has no ignore_eos (Ollama has no such option).
TOPICS = (
    "the sea",
    "a forest",
    "a city at night",
    "winter",
    "a train ride",
    "the moon",
    "an old library",
    "a storm",
    "a lighthouse keeper",
    "a desert caravan",
    "a clockmaker",
    "a mountain village",
    "a robot gardener",
    "a lost dog",
    "a river journey",
    "a market day",
)
SYSTEM = "You are a storyteller. You always write long, detailed stories."


def messages(i: int) -> list[dict[str, str]]:
    """The chat for request ``i``: an explicit system message, so neither server adds its own."""
    topic = TOPICS[i % len(TOPICS)]
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": f"Story {i}: write a very long story about {topic}."},
    ]


def parse_sse_line(line: str) -> dict[str, Any] | str | None:
    """One SSE line: the decoded JSON of a ``data:`` line, :data:`DONE`, or None for other lines.

    Blank lines, comments (``: keep-alive``) and ``event:``/``id:`` fields carry nothing we use.
    """
    if not line.startswith("data:"):
        return None
    payload = line[5:].strip()
    if payload == DONE:
        return DONE
    if not payload:
        return None
    value = json.loads(payload)
    if not isinstance(value, dict):
        raise TypeError(f"SSE data is not a JSON object: {payload[:80]!r}")
    return value


def chunk_text(event: dict[str, Any]) -> str:
    """The generated text a chat-completion chunk carries ('' for role-only or usage chunks)."""
    if "error" in event:
        raise RuntimeError(f"server error in stream: {event['error']}")
    text = ""
    for choice in event.get("choices") or ():
        delta = choice.get("delta") or {}
        text += (delta.get("content") or "") + (delta.get("reasoning_content") or "")
    return text


@dataclass
class Stream:
    """What one streamed request did; times are ``time.perf_counter()`` seconds."""

    sent: float
    chunk_times: list[float] = field(default_factory=list)
    tokens: int = 0  # completion tokens: from usage, else one per text chunk
    done: float = 0.0
    text: str = ""

    @property
    def ttft(self) -> float:
        return (self.chunk_times[0] if self.chunk_times else self.done) - self.sent

    @property
    def decode_rate(self) -> float | None:
        """(tokens - 1) / (last - first token time): the decode speed seen by this client."""
        if self.tokens < 2 or len(self.chunk_times) < 2:
            return None
        span = self.chunk_times[-1] - self.chunk_times[0]
        return (self.tokens - 1) / span if span > 0 else None


def request_body(model: str, i: int, max_tokens: int) -> dict[str, Any]:
    return {
        "model": model,
        "messages": messages(i),
        "max_tokens": max_tokens,
        "temperature": 0,
        "seed": 42,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


async def stream_chat(client: httpx.AsyncClient, model: str, i: int, max_tokens: int) -> Stream:
    """Send request ``i`` and read its stream to the end."""
    stream, _ = await stream_body(client, request_body(model, i, max_tokens))
    return stream


@dataclass
class Run:
    """``clients`` concurrent clients, each sending its requests one after another."""

    clients: int
    streams: list[Stream]
    wall: float

    @property
    def tokens(self) -> int:
        return sum(s.tokens for s in self.streams)

    @property
    def aggregate(self) -> float:
        return self.tokens / self.wall

    def ttfts(self) -> list[float]:
        return [s.ttft for s in self.streams]


async def run_clients(
    base_url: str, model: str, clients: int, per_client: int, max_tokens: int, first: int = 0
) -> Run:
    """Aggregate load: all clients start together; wall time runs from the first send to the
    last stream's end, so it includes prompt processing as a user would see it."""
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    timeout = httpx.Timeout(600.0, connect=30.0)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=timeout) as client:

        async def one_client(c: int) -> list[Stream]:
            out = []
            for r in range(per_client):
                out.append(await stream_chat(client, model, first + c * per_client + r, max_tokens))
            return out

        start = time.perf_counter()
        per = await asyncio.gather(*(one_client(c) for c in range(clients)))
        wall = time.perf_counter() - start
    return Run(clients, [s for streams in per for s in streams], wall)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), interpolated; the single value for one sample."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


# --- conversations: several users, each resending a growing history -----------------------

_FACTS = (
    "keeps the build green before lunch",
    "prefers small commits with honest messages",
    "reviews every change to the storage layer twice",
    "writes tests that read like specifications",
    "measures before optimising anything",
    "documents each configuration key in the README",
    "answers support questions within a day",
    "runs the benchmarks on a quiet machine",
)


def persona(user: int, sentences: int = 48) -> str:
    """A system prompt of the user's own, some 800 tokens: nothing in it is shared with another
    user's but the chat template around it."""
    name = f"Engineer{user}"
    lines = [f"You are the assistant of {name}, who works on project {user * 7919 % 1000}."]
    for i in range(sentences):
        fact = _FACTS[(i * (user + 3)) % len(_FACTS)]
        lines.append(f"Note {i + 1} for {name}: on day {(i * 13 + user) % 28 + 1} {name} {fact}.")
    return " ".join(lines)


@dataclass
class Turn:
    user: int
    turn: int
    stream: Stream
    cached: int | None  # usage.prompt_tokens_details.cached_tokens, when the server says


async def conversations(
    base_url: str, model: str, users: int, turns: int, max_tokens: int
) -> tuple[list[Turn], float]:
    """``users`` conversations, one request at a time, round robin: each request resends the
    user's whole history (their system prompt, every earlier question and answer), as chat
    clients do. Returns every turn and the wall time."""
    histories = [[{"role": "system", "content": persona(u)}] for u in range(users)]
    out: list[Turn] = []
    timeout = httpx.Timeout(600.0, connect=30.0)
    async with httpx.AsyncClient(base_url=base_url, timeout=timeout) as client:
        start = time.perf_counter()
        for turn in range(turns):
            for user in range(users):
                history = histories[user]
                history.append({"role": "user", "content": f"Question {turn + 1}: what does "
                                f"Engineer{user} do on day {turn * 5 + 1}? Answer briefly."})
                body = {
                    "model": model, "messages": history, "max_tokens": max_tokens,
                    "temperature": 0, "seed": 42, "stream": True,
                    "stream_options": {"include_usage": True},
                }
                stream, cached = await stream_body(client, body)
                history.append({"role": "assistant", "content": stream.text})
                out.append(Turn(user, turn, stream, cached))
        wall = time.perf_counter() - start
    return out, wall


async def stream_body(client: httpx.AsyncClient, body: dict[str, Any]) -> tuple[Stream, int | None]:
    """Stream one chat completion to the end: the Stream (tokens from the usage chunk, else the
    count of text chunks) and the prompt tokens the server says it served from cache, if it says."""
    result = Stream(sent=time.perf_counter())
    chunks = 0
    usage_tokens: int | None = None
    cached: int | None = None
    async with client.stream("POST", "/v1/chat/completions", json=body) as response:
        if response.status_code != 200:
            detail = (await response.aread()).decode(errors="replace")[:200]
            raise RuntimeError(f"HTTP {response.status_code}: {detail}")
        async for line in response.aiter_lines():
            event = parse_sse_line(line)
            if event is None:
                continue
            if event == DONE:
                break
            assert isinstance(event, dict)
            text = chunk_text(event)
            if text:
                result.chunk_times.append(time.perf_counter())
                result.text += text
                chunks += 1
            usage = event.get("usage")
            if usage:
                usage_tokens = int(usage.get("completion_tokens") or 0)
                details = usage.get("prompt_tokens_details") or {}
                if "cached_tokens" in details:
                    cached = int(details["cached_tokens"])
    result.done = time.perf_counter()
    result.tokens = usage_tokens if usage_tokens is not None else chunks
    return result, cached
