"""Prompt assembly and output splitting, below the API: Modelfile messages, truncation, thinking."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from llmd.inference.values import ChatRequest, GenerateRequest, Message, Sampling
from llmd.inference.prompt import chat_messages, chat_prompt, generate_prompt
from llmd.store import Message as ModelfileMessage
from llmd.inference.thinking import ThinkingParser

TEMPLATE = "{{ range .Messages }}[{{ .Role }}] {{ .Content }}\n{{ end }}"


@dataclass
class _Info:
    chat_template: str | None = None
    bos_token: str | None = None
    eos_token: str | None = None


@dataclass
class _Model:
    """The fields of store.Model that prompt assembly reads."""

    template: str | None = TEMPLATE
    system: str | None = None
    messages: tuple[ModelfileMessage, ...] = ()
    info: _Info = field(default_factory=_Info)


def test_modelfile_system_opens_the_chat_unless_the_request_brings_its_own() -> None:
    model = _Model(system="Be brief.", messages=(ModelfileMessage("user", "earlier"),))
    req = ChatRequest("m", (Message("user", "now"),))
    assert [(m.role, m.content) for m in chat_messages(model, req)] == [  # type: ignore[arg-type]
        ("system", "Be brief."), ("user", "earlier"), ("user", "now")]
    own = ChatRequest("m", (Message("system", "Mine."), Message("user", "now")))
    assert chat_messages(model, own)[0].content == "earlier"  # type: ignore[arg-type]


def test_generate_puts_system_then_modelfile_messages_then_the_prompt() -> None:
    model = _Model(system="S", messages=(ModelfileMessage("assistant", "hello"),))
    prompt = generate_prompt(model, GenerateRequest("m", prompt="P"))  # type: ignore[arg-type]
    assert prompt == "[system] S\n[assistant] hello\n[user] P\n"
    with_context = generate_prompt(model, GenerateRequest("m", prompt="P", context=(1, 2)))  # type: ignore[arg-type]
    assert "hello" not in with_context


async def _words(text: str) -> list[int]:
    return [0] * len(text.split())


def test_truncation_drops_the_oldest_non_system_messages_and_keeps_the_last() -> None:
    history = (Message("system", "rules"), Message("user", "one two three four five"),
               Message("assistant", "six seven eight nine ten"), Message("user", "last"))
    req = ChatRequest("m", history)
    prompt = asyncio.run(chat_prompt(_Model(), req, _words, 12, 2))  # type: ignore[arg-type]
    assert prompt == "[system] rules\n[assistant] six seven eight nine ten\n[user] last\n"
    untruncated = ChatRequest("m", history, params=Sampling(truncate=False))
    assert "one two" in asyncio.run(chat_prompt(_Model(), untruncated, _words, 12, 2))  # type: ignore[arg-type]


def test_truncation_leaves_the_answer_num_predict_tokens_else_a_quarter_of_the_context() -> None:
    history = (Message("user", "one two three four five six seven eight"),
               Message("assistant", "nine ten"), Message("user", "last"))
    req = ChatRequest("m", history)
    whole = asyncio.run(chat_prompt(_Model(), req, _words, 16, 2))  # type: ignore[arg-type]
    assert "one two" in whole  # 14 words leave 2 for the answer
    assert "one two" not in asyncio.run(chat_prompt(_Model(), req, _words, 16, 4))  # type: ignore[arg-type]
    # no num_predict: a quarter of 16 is kept free, so 12 words are too many
    assert "one two" not in asyncio.run(chat_prompt(_Model(), req, _words, 16))  # type: ignore[arg-type]
    assert "one two" in asyncio.run(chat_prompt(_Model(), req, _words, 19))  # type: ignore[arg-type]


def test_thinking_is_split_from_the_answer_across_deltas() -> None:
    parser = ThinkingParser()
    pieces = [parser.feed(t) for t in ("<thi", "nk>Let me", " see.</th", "ink>\n\nIt is", " 4.")]
    pieces.append(parser.flush())
    assert "".join(p[0] for p in pieces) == "Let me see."
    assert "".join(p[1] for p in pieces) == "It is 4."


def test_output_without_a_think_tag_is_all_answer() -> None:
    parser = ThinkingParser()
    assert parser.feed("<b>bold</b>") == ("", "<b>bold</b>")
