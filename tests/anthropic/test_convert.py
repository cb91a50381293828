"""Anthropic Messages bodies become native chat requests, and generations become messages and events."""

from __future__ import annotations

import base64

import pytest
from llmd.api.anthropic_convert import (
    MessageStream,
    count_tokens_request,
    message_object,
    messages_request,
)
from llmd.errors import InvalidRequest
from llmd.inference.values import Chunk, Final, ToolCall

FINAL = Final("stop", prompt_eval_count=5, eval_count=3)
USER = [{"role": "user", "content": "hi"}]


def test_sampling_fields_become_options_and_max_tokens_num_predict() -> None:
    req = messages_request({"model": "m", "max_tokens": 9, "messages": USER, "temperature": 0.2,
                            "top_p": 0.5, "top_k": 3, "stop_sequences": ["END"], "stream": True})
    assert req.chat.params.options == {"num_predict": 9, "temperature": 0.2, "top_p": 0.5,
                                       "top_k": 3, "stop": ["END"]}
    assert req.stream and req.chat.stream


def test_absent_sampling_fields_keep_the_models_defaults() -> None:
    req = messages_request({"model": "m", "max_tokens": 9, "messages": USER})
    assert req.chat.params.options == {"num_predict": 9}


def test_system_as_a_string_or_text_blocks_is_the_first_message() -> None:
    for system in ("be brief", [{"type": "text", "text": "be"}, {"type": "text", "text": "brief",
                                                                  "cache_control": {"type": "ephemeral"}}]):
        req = messages_request({"model": "m", "max_tokens": 1, "messages": USER, "system": system})
        assert req.chat.messages[0].role == "system" and req.chat.messages[0].content in ("be brief", "be\nbrief")


def test_tool_use_and_tool_result_blocks_become_calls_and_tool_messages() -> None:
    png = base64.b64encode(b"img").decode()
    req = messages_request({"model": "m", "max_tokens": 1, "messages": [
        {"role": "user", "content": [{"type": "text", "text": "weather?"},
                                     {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                                  "data": png}}]},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "use the tool", "signature": "s"},
            {"type": "text", "text": "Let me look."},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "sunny"}]},
            {"type": "text", "text": "and tomorrow?"}]},
    ]})
    user, assistant, result, follow_up = req.chat.messages
    assert user.content == "weather?" and user.images == (b"img",)
    assert assistant.thinking == "use the tool" and assistant.content == "Let me look."
    assert [(c.name, dict(c.arguments), c.id) for c in assistant.tool_calls] == [
        ("get_weather", {"city": "Paris"}, "toolu_1")]
    assert (result.role, result.content, result.tool_name, result.tool_call_id) == (
        "tool", "sunny", "get_weather", "toolu_1")
    assert follow_up.role == "user" and follow_up.content == "and tomorrow?"


def test_tools_thinking_and_tool_choice_map_to_native_fields() -> None:
    tools = [{"name": "f", "description": "d", "input_schema": {"type": "object"}},
             {"name": "g", "input_schema": {"type": "object"}}]
    req = messages_request({"model": "m", "max_tokens": 1, "messages": USER, "tools": tools,
                            "thinking": {"type": "enabled", "budget_tokens": 1024}})
    assert [dict(t.function) for t in req.chat.tools][0] == {
        "name": "f", "description": "d", "parameters": {"type": "object"}}
    assert req.chat.params.think is True and req.chat.relax_thinking
    only_g = messages_request({"model": "m", "max_tokens": 1, "messages": USER, "tools": tools,
                               "tool_choice": {"type": "tool", "name": "g"}})
    assert [t.name for t in only_g.chat.tools] == ["g"]
    none = messages_request({"model": "m", "max_tokens": 1, "messages": USER, "tools": tools,
                             "tool_choice": {"type": "none"}})
    assert none.chat.tools == ()
    effort = messages_request({"model": "m", "max_tokens": 1, "messages": USER,
                               "output_config": {"effort": "medium"}})
    assert effort.chat.params.think == "medium"


@pytest.mark.parametrize("body, message", [
    ({"model": None}, "model is required"),
    ({"max_tokens": None}, "max_tokens is required and must be positive"),
    ({"max_tokens": 0}, "max_tokens is required and must be positive"),
    ({"messages": []}, "messages is required"),
    ({"messages": [{"role": "system", "content": "x"}]}, "invalid role 'system'"),
    ({"messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "url", "url": "u"}}]}]},
     "Only base64 images are supported"),
    ({"messages": [{"role": "assistant", "content": [{"type": "tool_use", "name": "f", "input": {}}]}]},
     "tool_use block missing required 'id' field"),
    ({"messages": [{"role": "user", "content": [{"type": "document", "source": {}}]}]},
     "document blocks"),
    ({"messages": [{"role": "user", "content": [{"type": "video"}]}]}, "unsupported content block type 'video'"),
    ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "llmd runs no server tools"),
    ({"thinking": {"type": "sometimes"}}, "invalid thinking type"),
    ({"stop_sequences": "END"}, "expected an array of strings"),
    ({"top_k": 1.5}, "expected an integer"),
    ({"system": [{"type": "image"}]}, "only text blocks"),
])
def test_bad_bodies_are_refused_with_anthropic_wording(body: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        messages_request({"model": "m", "max_tokens": 5, "messages": USER, **body})


def test_count_tokens_needs_no_max_tokens() -> None:
    req = count_tokens_request({"model": "m", "messages": USER, "system": "s"})
    assert [m.role for m in req.messages] == ["system", "user"] and "num_predict" not in req.params.options


def test_a_streamed_answer_follows_anthropics_event_sequence() -> None:
    stream = MessageStream("m")
    events = [*stream.events(Chunk(thinking="hmm")), *stream.events(Chunk(content="Hel")),
              *stream.events(Chunk(content="lo")), *stream.events(FINAL)]
    assert [name for name, _ in events] == [
        "message_start", "ping",
        "content_block_start", "content_block_delta", "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop",
        "message_delta", "message_stop",
    ]
    assert all(data["type"] == name for name, data in events)
    start = events[0][1]["message"]
    assert start["content"] == [] and start["stop_reason"] is None and start["role"] == "assistant"
    assert events[2][1]["content_block"] == {"type": "thinking", "thinking": "", "signature": ""}
    assert events[3][1]["delta"] == {"type": "thinking_delta", "thinking": "hmm"}
    assert events[5][1] == {"type": "content_block_start", "index": 1,
                            "content_block": {"type": "text", "text": ""}}
    assert events[6][1]["delta"] == {"type": "text_delta", "text": "Hel"}
    assert events[-2][1] == {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                             "usage": {"input_tokens": 5, "output_tokens": 3}}


def test_a_tool_call_is_a_whole_tool_use_block_and_stops_for_tool_use() -> None:
    stream = MessageStream("m")
    events = [*stream.events(Chunk(content="Checking.")),
              *stream.events(Chunk(tool_calls=(ToolCall("f", {"a": 1}, "call1"),))), *stream.events(FINAL)]
    names = [n for n, _ in events]
    assert names[2:] == ["content_block_start", "content_block_delta", "content_block_stop",
                         "content_block_start", "content_block_delta", "content_block_stop",
                         "message_delta", "message_stop"]
    assert events[5][1]["content_block"] == {"type": "tool_use", "id": "call1", "name": "f", "input": {}}
    assert events[6][1]["delta"] == {"type": "input_json_delta", "partial_json": '{"a": 1}'}
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"


def test_the_whole_message_holds_every_block_and_the_usage() -> None:
    body = message_object("m", [Chunk(content="a"), Chunk(tool_calls=(ToolCall("f", {}, "c"),))],
                          Final("stop", prompt_eval_count=4, eval_count=2))
    assert body["type"] == "message" and body["id"].startswith("msg_") and body["model"] == "m"
    assert body["content"] == [{"type": "text", "text": "a"},
                               {"type": "tool_use", "id": "c", "name": "f", "input": {}}]
    assert body["stop_reason"] == "tool_use" and body["usage"] == {"input_tokens": 4, "output_tokens": 2}
    assert message_object("m", [Chunk(content="a")], Final("length"))["stop_reason"] == "max_tokens"


def test_prompt_tokens_served_from_the_cache_are_cache_reads_not_input_tokens() -> None:
    final = Final("stop", prompt_eval_count=4, prompt_cached=96, eval_count=2)
    usage = message_object("m", [Chunk(content="a")], final)["usage"]
    assert usage == {"input_tokens": 4, "output_tokens": 2, "cache_read_input_tokens": 96}


def test_tool_choice_any_or_tool_forces_a_call_through_the_format() -> None:
    tools = [{"name": "f", "input_schema": {"type": "object", "properties": {"a": {"type": "integer"}}}},
             {"name": "g"}]
    anyone = messages_request({"model": "m", "max_tokens": 1, "messages": USER, "tools": tools,
                               "tool_choice": {"type": "any"}})
    schema = anyone.chat.params.format
    assert isinstance(schema, dict) and [c["properties"]["name"] for c in schema["anyOf"]] == [
        {"const": "f"}, {"const": "g"}]
    only_f = messages_request({"model": "m", "max_tokens": 1, "messages": USER, "tools": tools,
                               "tool_choice": {"type": "tool", "name": "f"}})
    assert only_f.chat.params.format == {
        "type": "object", "required": ["name", "arguments"],
        "properties": {"name": {"const": "f"}, "arguments": tools[0]["input_schema"]}}
    auto = messages_request({"model": "m", "max_tokens": 1, "messages": USER, "tools": tools})
    assert auto.chat.params.format is None
    with pytest.raises(InvalidRequest, match="which is not in 'tools'"):
        messages_request({"model": "m", "max_tokens": 1, "messages": USER, "tools": tools,
                          "tool_choice": {"type": "tool", "name": "h"}})


def test_a_stop_sequence_is_named_in_the_stop_reason() -> None:
    stream = MessageStream("m")
    events = [*stream.events(Chunk(content="a")), *stream.events(Final("stop", stop_sequence="END"))]
    assert events[-2][1]["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "END"}
    body = message_object("m", [Chunk(content="a")], Final("stop", stop_sequence="END"))
    assert body["stop_reason"] == "stop_sequence" and body["stop_sequence"] == "END"
    assert message_object("m", [], FINAL)["stop_sequence"] is None
