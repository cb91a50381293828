"""Responses bodies become native chat requests, and generations become Responses objects and events."""

from __future__ import annotations

import base64

import pytest
from llmd.api.responses_convert import ResponseStream, response_object, responses_request
from llmd.errors import InvalidRequest
from llmd.inference.values import Chunk, Final, ToolCall

FINAL = Final("stop", prompt_eval_count=5, eval_count=3)


def test_a_string_input_is_one_user_message_after_the_instructions() -> None:
    req = responses_request({"model": "m", "input": "hi", "instructions": "be brief",
                             "max_output_tokens": 7, "top_p": 0.5})
    assert [(m.role, m.content) for m in req.chat.messages] == [("system", "be brief"), ("user", "hi")]
    assert req.chat.params.options == {"temperature": 1.0, "top_p": 0.5, "num_predict": 7}
    assert req.stream is False and req.echo["instructions"] == "be brief"


def test_items_carry_messages_calls_outputs_and_reasoning() -> None:
    png = base64.b64encode(b"img").decode()
    req = responses_request({"model": "m", "input": [
        {"role": "developer", "content": "rules"},
        {"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "weather?"},
            {"type": "input_image", "image_url": f"data:image/png;base64,{png}"}]},
        {"type": "reasoning", "summary": [{"type": "summary_text", "text": "need a tool"}]},
        {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": '{"city": "Paris"}'},
        {"type": "function_call", "call_id": "c2", "name": "get_time", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Sunny."}]},
    ]})
    system, user, call, result, answer = req.chat.messages
    assert system.role == "system" and system.content == "rules"
    assert user.content == "weather?" and user.images == (b"img",)
    assert call.role == "assistant" and call.thinking == "need a tool"
    assert [(c.name, dict(c.arguments), c.id, c.index) for c in call.tool_calls] == [
        ("get_weather", {"city": "Paris"}, "c1", 0), ("get_time", {}, "c2", 1)]
    assert (result.role, result.content, result.tool_name, result.tool_call_id) == ("tool", "sunny", "get_weather", "c1")
    assert answer.role == "assistant" and answer.content == "Sunny."


@pytest.mark.parametrize("body, message", [
    ({"previous_response_id": "resp_1"}, "previous_response_id is not supported"),
    ({"background": True}, "background is not supported"),
    ({"conversation": "conv_1"}, "conversation is not supported"),
    ({"input": None}, "input is required"),
    ({"input": []}, "input is required"),
    ({"input": [{"content": "x"}]}, "missing required 'type' field"),
    ({"input": [{"type": "item_reference", "id": "x"}]}, "unknown input item type: 'item_reference'"),
    ({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
     "file inputs are not currently supported"),
    ({"input": [{"type": "function_call", "name": "f", "arguments": "{nope"}]},
     "failed to parse function call arguments"),
    ({"tools": [{"type": "web_search"}]}, "tool type 'web_search' is not supported"),
    ({"text": {"format": {"type": "json_schema", "name": "x"}}}, "needs a 'schema' object"),
    ({"reasoning": {"effort": "huge"}}, "invalid reasoning value"),
    ({"temperature": "hot"}, "invalid value for 'temperature'"),
    ({"model": ""}, "model is required"),
])
def test_what_a_stateless_server_cannot_do_is_a_clear_400(body: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        responses_request({"model": "m", "input": "x", **body})


def test_function_tools_json_schema_and_effort_map_to_native_fields() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    req = responses_request({
        "model": "m", "input": "x", "reasoning": {"effort": "none"},
        "text": {"format": {"type": "json_schema", "name": "a", "schema": schema, "strict": True}},
        "tools": [{"type": "function", "name": "f", "description": "d", "parameters": {"type": "object"}}],
    })
    assert req.chat.params.format == schema and req.chat.params.think is False
    assert [(t.type, dict(t.function)) for t in req.chat.tools] == [
        ("function", {"name": "f", "description": "d", "parameters": {"type": "object"}})]
    assert responses_request({"model": "m", "input": "x", "text": {"format": {"type": "json_object"}}}
                             ).chat.params.format == "json"
    none = responses_request({"model": "m", "input": "x", "tool_choice": "none",
                              "tools": [{"type": "function", "name": "f"}]})
    assert none.chat.tools == ()


def test_a_streamed_answer_follows_the_responses_event_sequence() -> None:
    stream = ResponseStream(responses_request({"model": "m", "input": "x"}))
    events = [*stream.events(Chunk(thinking="hmm")), *stream.events(Chunk(content="Hel")),
              *stream.events(Chunk(content="lo")), *stream.events(FINAL)]
    assert [name for name, _ in events] == [
        "response.created", "response.in_progress",
        "response.output_item.added", "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done", "response.reasoning_summary_part.done",
        "response.output_item.done",
        "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.delta",
        "response.output_text.done", "response.content_part.done", "response.output_item.done",
        "response.completed",
    ]
    assert [data["sequence_number"] for _, data in events] == list(range(len(events)))
    assert all(data["type"] == name for name, data in events)
    deltas = [d for n, d in events if n == "response.output_text.delta"]
    assert [d["delta"] for d in deltas] == ["Hel", "lo"] and {d["output_index"] for d in deltas} == {1}
    done = events[-1][1]["response"]
    assert done["status"] == "completed" and done["usage"]["total_tokens"] == 8
    reasoning, message = done["output"]
    assert reasoning["summary"] == [{"type": "summary_text", "text": "hmm"}]
    assert message["status"] == "completed" and message["content"][0]["text"] == "Hello"


def test_tool_calls_are_function_call_items_and_end_the_text() -> None:
    req = responses_request({"model": "m", "input": "x", "tools": [{"type": "function", "name": "f"}]})
    stream = ResponseStream(req)
    events = [*stream.events(Chunk(tool_calls=(ToolCall("f", {"a": 1}, "call1"),))),
              *stream.events(Chunk(content="ignored")), *stream.events(FINAL)]
    names = [n for n, _ in events]
    assert names[2:] == ["response.output_item.added", "response.function_call_arguments.delta",
                         "response.function_call_arguments.done", "response.output_item.done",
                         "response.completed"]
    (item,) = events[-1][1]["response"]["output"]
    assert item == {"id": item["id"], "type": "function_call", "status": "completed",
                    "call_id": "call1", "name": "f", "arguments": '{"a": 1}'}


def test_a_length_stop_is_an_incomplete_response() -> None:
    req = responses_request({"model": "m", "input": "x", "max_output_tokens": 3})
    body = response_object(req, [Chunk(content="abc")], Final("length", eval_count=3))
    assert body["status"] == "incomplete"
    assert body["incomplete_details"] == {"reason": "max_output_tokens"}
    assert body["max_output_tokens"] == 3 and body["previous_response_id"] is None


def test_an_empty_answer_is_still_one_message() -> None:
    body = response_object(responses_request({"model": "m", "input": "x"}), [], FINAL)
    (message,) = body["output"]
    assert message["type"] == "message" and message["content"][0]["text"] == ""


def test_prompt_tokens_served_from_the_cache_are_counted_and_reported_as_cached() -> None:
    final = Final("stop", prompt_eval_count=4, prompt_cached=96, eval_count=3)
    usage = response_object(responses_request({"model": "m", "input": "x"}), [], final)["usage"]
    assert usage["input_tokens"] == 100 and usage["total_tokens"] == 103
    assert usage["input_tokens_details"] == {"cached_tokens": 96}


def test_a_failure_after_the_start_is_response_failed() -> None:
    stream = ResponseStream(responses_request({"model": "m", "input": "x"}))
    stream.events(Chunk(content="a"))
    ((name, data),) = stream.failed("server_error", "runner crashed")
    assert name == "response.failed"
    assert data["response"]["status"] == "failed"
    assert data["response"]["error"] == {"code": "server_error", "message": "runner crashed"}


def test_a_required_tool_choice_forces_a_call_through_the_format() -> None:
    tools = [{"type": "function", "name": "f", "parameters": {"type": "object"}}]
    for choice in ("required", {"type": "function", "name": "f"}):
        req = responses_request({"model": "m", "input": "x", "tools": tools, "tool_choice": choice})
        assert req.chat.params.format == {"type": "object", "required": ["name", "arguments"],
                                          "properties": {"name": {"const": "f"},
                                                         "arguments": {"type": "object"}}}
    assert responses_request({"model": "m", "input": "x", "tools": tools}).chat.params.format is None
    with pytest.raises(InvalidRequest, match="invalid tool_choice"):
        responses_request({"model": "m", "input": "x", "tools": tools, "tool_choice": "sometimes"})
