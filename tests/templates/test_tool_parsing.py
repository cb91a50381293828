"""Tool calls are found in model output, whole or streamed, in the shape the template shows."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator

import pytest
from llmd.templates import (
    ToolCall,
    ToolCallParser,
    parse_tool_calls,
    tool_call_parser,
    tool_call_tags,
)
from templates.library import CHATML_TOOLS, LLAMA31_TOOLS, MISTRAL_TOOLS

PARIS = ToolCall("get_weather", {"city": "Paris", "unit": "C"})


def test_template_shows_the_tags_around_calls() -> None:
    assert tool_call_tags(CHATML_TOOLS, None) == ("<tool_call>", "</tool_call>")
    assert tool_call_tags(MISTRAL_TOOLS, None) == ("[TOOL_CALLS]", "")
    assert tool_call_tags(LLAMA31_TOOLS, None) is None
    assert tool_call_tags(None, "{% if tools %}<tool_call>{% endif %}") == (
        "<tool_call>",
        "</tool_call>",
    )


def test_plain_json_with_parameters_is_a_call() -> None:
    text = '{"name": "get_weather", "parameters": {"city": "Paris", "unit": "C"}}'
    assert parse_tool_calls(text, go_template=LLAMA31_TOOLS) == ("", (PARIS,))


def test_arguments_keep_their_key_order() -> None:
    _, calls = parse_tool_calls('{"name": "f", "arguments": {"z": 1, "a": 2, "m": 3}}')
    assert list(calls[0].arguments) == ["z", "a", "m"]


def test_tagged_calls_are_taken_out_of_the_content() -> None:
    text = (
        'Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "unit": "C"}}\n'
        "</tool_call>"
    )
    assert parse_tool_calls(text, go_template=CHATML_TOOLS) == (
        "Let me check.",
        (PARIS,),
    )


def test_a_list_after_the_prefix_gives_several_calls() -> None:
    text = (
        '[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Paris", "unit": "C"}}, '
        '{"name": "get_time", "arguments": {}}]'
    )
    assert parse_tool_calls(text, go_template=MISTRAL_TOOLS) == (
        "",
        (PARIS, ToolCall("get_time", {})),
    )


def test_openai_shaped_calls_with_string_arguments_are_understood() -> None:
    text = '{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\\"x\\": 1}"}}'
    assert parse_tool_calls(text) == ("", (ToolCall("f", {"x": 1}, id="c1"),))


@pytest.mark.parametrize(
    "text",
    [
        '{"answer": 42}',
        'Here is JSON: {"name": "Bob", "age": 3}',
        "[1, 2, 3]",
        "Use {curly braces} in prose.",
        "<tool_call>not json</tool_call>",
    ],
)
def test_json_that_is_not_a_call_stays_content(text: str) -> None:
    assert parse_tool_calls(text, go_template=CHATML_TOOLS) == (text, ())


def test_only_offered_tools_count_when_names_are_given() -> None:
    text = '{"name": "rm_rf", "arguments": {}}'
    assert parse_tool_calls(text, tool_names=["get_weather"]) == (text, ())


def stream(
    parser: ToolCallParser, pieces: list[str]
) -> list[tuple[str, tuple[ToolCall, ...]]]:
    return [parser.feed(p) for p in pieces] + [parser.flush()]


def test_streaming_holds_back_a_possible_call_and_releases_it_as_a_call() -> None:
    parser = tool_call_parser(CHATML_TOOLS, None)
    out = stream(
        parser,
        [
            "Sure",
            " <tool",
            '_call>\n{"na',
            'me": "get_weather", "arguments": ',
            '{"city": "Paris", "unit": "C"}}\n</tool',
            "_call>",
        ],
    )
    assert out == [
        ("Sure", ()),
        (" ", ()),
        ("", ()),
        ("", ()),
        ("", ()),
        ("", (PARIS,)),
        ("", ()),
    ]


def test_streaming_releases_text_as_soon_as_it_cannot_be_a_call() -> None:
    parser = tool_call_parser(CHATML_TOOLS, None)
    assert parser.feed("a <tool") == ("a ", ())
    assert parser.feed("box> and {") == ("<toolbox> and ", ())
    assert parser.feed("curly}") == ("{curly}", ())
    assert parser.feed(' {"answer"') == (' {"answer"', ())
    assert parser.flush() == ("", ())


def test_streaming_flush_gives_back_an_unfinished_call_as_content() -> None:
    parser = ToolCallParser()
    assert parser.feed('{"name": "f", "argu') == ("", ())
    assert parser.flush() == ('{"name": "f", "argu', ())


def test_streaming_a_call_without_its_closing_tag_is_still_a_call_at_the_end() -> None:
    parser = tool_call_parser(CHATML_TOOLS, None)
    assert parser.feed('<tool_call>{"name": "f", "arguments": {}}') == ("", ())
    assert parser.flush() == ("", (ToolCall("f", {}),))


def test_streaming_mistral_prefix_split_across_deltas() -> None:
    parser = tool_call_parser(MISTRAL_TOOLS, None)
    out = stream(
        parser,
        ["[TOOL", "_CALLS] [", '{"name": "f", "arguments": {"a": [1, "]"]}}', "]"],
    )
    assert out[-2:] == [("", (ToolCall("f", {"a": [1, "]"]}),)), ("", ())]
    assert all(text == "" for text, _ in out)


class _Deadline(Exception):
    pass


@contextlib.contextmanager
def _within(seconds: float, what: str) -> Iterator[None]:
    """A bound against a hang (quadratic work on the event loop), never a speed assertion."""

    def expire(*_: object) -> None:
        raise _Deadline

    old = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    except _Deadline:
        pytest.fail(f"{what} took over {seconds:g} s")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@pytest.mark.parametrize("tags", [None, ("<tool_call>", "</tool_call>")])
def test_streaming_a_long_call_costs_time_in_proportion_to_its_length(
    tags: tuple[str, str] | None,
) -> None:
    # The parser runs on the event loop that serves every client: rescanning all it holds on
    # each delta made a 50,000-character call take ~10^9 steps. 20 s is a bound against that
    # hang, orders of magnitude above what the linear parser needs (well under a second).
    opening = tags[0] if tags else ""
    argument = "x" * 50_000
    text = opening + '{"name": "f", "arguments": {"a": "' + argument + '", "b": [1, 2]}}'
    parser = ToolCallParser(tags)
    with _within(20.0, "feeding a long call one character at a time"):
        out = [parser.feed(c) for c in text] + [parser.flush()]
    assert "".join(text for text, _ in out) == ""
    assert [call for _, calls in out for call in calls] == [ToolCall("f", {"a": argument, "b": [1, 2]})]


def test_flushing_many_nested_unfinished_calls_stays_bounded() -> None:
    parser = ToolCallParser()
    held = '{"name": ' * 20_000
    with _within(20.0, "flushing nested unfinished calls"):
        assert parser.feed(held) == ("", ())
        assert parser.flush() == (held, ())
