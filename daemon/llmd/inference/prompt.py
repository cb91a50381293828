"""Prompt assembly as Ollama's server/prompt.go and GenerateHandler do it, over llmd.templates.

- generate: system (request, else Modelfile), the Modelfile MESSAGEs unless ``context`` is
  given, then the prompt as a user message; with ``suffix`` the template gets Prompt and Suffix.
- chat: the Modelfile MESSAGEs first, the Modelfile SYSTEM first of all when the request does not
  open with a system message; then, with ``truncate``, the oldest messages that are not system
  messages are dropped until the prompt leaves room for the answer in ``num_ctx``: ``num_predict``
  tokens when set, else a quarter of the context (the last message is always kept).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from llmd import templates
from llmd.inference.values import ChatRequest, GenerateRequest, Message, Think, Tool, ToolCall
from llmd.store import Model

Tokenize = Callable[[str], Awaitable[list[int]]]


def _modelfile_messages(model: Model) -> list[Message]:
    return [Message(role=m.role, content=m.content) for m in model.messages]


def generate_prompt(model: Model, req: GenerateRequest) -> str:
    template = req.template if req.template is not None else model.template
    if req.suffix:
        return _render(model, template, [], (), req.params.think, prompt=req.prompt, suffix=req.suffix)
    messages: list[Message] = []
    system = req.system or model.system
    if system:
        messages.append(Message(role="system", content=system))
    if not req.context:
        messages.extend(_modelfile_messages(model))
    messages.append(Message(role="user", content=req.prompt, images=req.images))
    return _render(model, template, messages, (), req.params.think)


def chat_messages(model: Model, req: ChatRequest) -> list[Message]:
    messages = _modelfile_messages(model) + list(req.messages)
    if model.system and (not req.messages or req.messages[0].role != "system"):
        messages.insert(0, Message(role="system", content=model.system))
    return messages


async def chat_prompt(
    model: Model, req: ChatRequest, tokenize: Tokenize, num_ctx: int, num_predict: int = -1
) -> str:
    messages = chat_messages(model, req)
    # Ollama fills the context with history and leaves the answer a few tokens; keep its room.
    limit = max(1, num_ctx - (num_predict if num_predict > 0 else num_ctx // 4))

    def render(start: int) -> str:
        kept = [m for m in messages[:start] if m.role == "system"] + messages[start:]
        return _render(model, model.template, kept, req.tools, req.params.think)

    whole = render(0)
    if not req.params.truncate or _surely_fits(whole, limit) or len(await tokenize(whole)) <= limit:
        return whole
    # Walk back from the last message while the prompt still fits, as chatPrompt does.
    start = len(messages) - 1
    for i in range(len(messages) - 2, -1, -1):
        if len(await tokenize(render(i))) > limit:
            break
        start = i
    return render(start)


def _surely_fits(text: str, num_ctx: int) -> bool:
    """True when ``text`` cannot tokenize to more than ``num_ctx`` tokens.

    A token covers at least one byte of text (byte-fallback tokens exactly one) and a
    SentencePiece tokenizer adds at most one leading space, so a prompt shorter in bytes than the
    context needs no round trip to the runner, which may be busy with a decode step: the common
    case skips a wait before the first token.
    """
    return len(text.encode("utf-8")) < num_ctx


class ToolCallParser:
    """Splits streamed output into content and tool calls; llmd.templates finds the calls."""

    def __init__(self, inner: templates.ToolCallParser) -> None:
        self._inner = inner
        self._count = 0

    def feed(self, text: str) -> tuple[str, tuple[ToolCall, ...]]:
        return self._convert(*self._inner.feed(text))

    def flush(self) -> tuple[str, tuple[ToolCall, ...]]:
        return self._convert(*self._inner.flush())

    def _convert(
        self, content: str, calls: Sequence[templates.ToolCall]
    ) -> tuple[str, tuple[ToolCall, ...]]:
        out = tuple(ToolCall(c.name, c.arguments, c.id or "", self._count + i) for i, c in enumerate(calls))
        self._count += len(out)
        return content, out


def tool_parser(model: Model, tools: Sequence[Tool]) -> ToolCallParser | None:
    """A parser for the call syntax the model's template shows, when tools were offered."""
    if not tools:
        return None
    inner = templates.tool_call_parser(model.template, model.info.chat_template, [t.name for t in tools])
    return ToolCallParser(inner)


def _chat_message(m: Message) -> templates.ChatMessage:
    return templates.ChatMessage(
        role=m.role,
        content=m.content,
        images=m.images,
        tool_calls=tuple(templates.ToolCall(c.name, dict(c.arguments), c.id or None) for c in m.tool_calls),
        tool_name=m.tool_name or None,
        thinking=m.thinking or None,
    )


def _think(think: Think) -> bool | None:
    return None if think is None else think is not False  # a level means thinking on


def _render(
    model: Model, template: str | None, messages: Sequence[Message], tools: Sequence[Tool],
    think: Think, *, prompt: str = "", suffix: str = "",
) -> str:
    info = model.info
    jinja = None if template is not model.template else info.chat_template  # an override is Go
    if suffix:
        return templates.render_generate(
            go_template=template, jinja_template=jinja, prompt=prompt, system=None, suffix=suffix,
            bos_token=info.bos_token or "", eos_token=info.eos_token or "", think=_think(think),
        )
    return templates.render_chat(
        go_template=template, jinja_template=jinja,
        messages=[_chat_message(m) for m in messages],
        tools=[{"type": t.type, "function": dict(t.function)} for t in tools],
        bos_token=info.bos_token or "", eos_token=info.eos_token or "", think=_think(think),
    )
