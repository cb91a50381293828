"""The official anthropic package works against llmd's /v1/messages unchanged."""

from __future__ import annotations

import anthropic
import httpx
import pytest
from harness import LiveServer

MODEL = "smollm2:135m"
TOOLS_MODEL = "smollm2-tools:135m"
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
BRIEF = {"system": "Answer in one word.", "max_tokens": 40, "extra_body": {"temperature": 0}}
WEATHER = {"name": "get_weather", "description": "The weather in a city",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string", "enum": ["Paris"]}},
                            "required": ["city"]}}


def test_a_message_has_anthropics_shape(client: anthropic.Anthropic) -> None:
    reply = client.messages.create(model=MODEL, messages=QUESTION, **BRIEF)  # type: ignore[arg-type]
    assert reply.type == "message" and reply.role == "assistant" and reply.id.startswith("msg_")
    assert reply.model == MODEL and reply.stop_reason in ("end_turn", "max_tokens")
    (block,) = reply.content
    assert block.type == "text" and block.text
    assert reply.usage.input_tokens > 0 and reply.usage.output_tokens > 0


def test_max_tokens_stops_the_answer_with_max_tokens(client: anthropic.Anthropic) -> None:
    reply = client.messages.create(model=MODEL, max_tokens=3, messages=[
        {"role": "user", "content": "Tell me a long story."}], extra_body={"temperature": 0})
    assert reply.stop_reason == "max_tokens" and reply.usage.output_tokens == 3


def test_a_stop_sequence_ends_the_answer_and_is_named(client: anthropic.Anthropic) -> None:
    reply = client.messages.create(model=MODEL, max_tokens=40, stop_sequences=[" "], messages=[
        {"role": "user", "content": "Write a sentence about the sea."}], extra_body={"temperature": 0})
    assert reply.stop_reason == "stop_sequence" and reply.stop_sequence == " "
    assert all(" " not in b.text for b in reply.content if b.type == "text")


def test_the_stream_helper_yields_text_and_the_final_message(client: anthropic.Anthropic) -> None:
    with client.messages.stream(model=MODEL, messages=QUESTION, **BRIEF) as stream:  # type: ignore[arg-type]
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text and final.content[0].type == "text" and final.content[0].text == text
    assert final.stop_reason in ("end_turn", "max_tokens") and final.usage.output_tokens > 0


def test_a_raw_stream_sends_anthropics_event_sequence(client: anthropic.Anthropic) -> None:
    events = list(client.messages.create(model=MODEL, messages=QUESTION, stream=True, **BRIEF))  # type: ignore[call-overload]
    types = [e.type for e in events]
    assert types[:3] == ["message_start", "content_block_start", "content_block_delta"]
    assert types[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    delta = events[-2]
    assert delta.delta.stop_reason in ("end_turn", "max_tokens") and delta.usage.output_tokens > 0


def test_count_tokens_counts_what_a_message_then_reads(client: anthropic.Anthropic) -> None:
    messages = [{"role": "user", "content": "Hello there"}]
    counted = client.messages.count_tokens(model=MODEL, messages=messages, system="Be brief.")  # type: ignore[arg-type]
    reply = client.messages.create(model=MODEL, messages=messages, system="Be brief.", max_tokens=2)  # type: ignore[arg-type]
    cached = reply.usage.cache_read_input_tokens or 0  # a slot may hold the template's opening
    assert counted.input_tokens == reply.usage.input_tokens + cached > 0


def test_a_required_tool_comes_back_as_a_tool_use_block(client: anthropic.Anthropic) -> None:
    question = [{"role": "user", "content": "What is the weather in Paris?"}]
    reply = client.messages.create(model=TOOLS_MODEL, max_tokens=60, messages=question,  # type: ignore[arg-type]
                                   tools=[WEATHER], tool_choice={"type": "any"},  # type: ignore[list-item]
                                   extra_body={"temperature": 0})
    assert reply.stop_reason == "tool_use"
    (call,) = [b for b in reply.content if b.type == "tool_use"]
    assert call.name == "get_weather" and call.input == {"city": "Paris"} and call.id

    with client.messages.stream(model=TOOLS_MODEL, max_tokens=60, messages=question,  # type: ignore[arg-type]
                                tools=[WEATHER], tool_choice={"type": "tool", "name": "get_weather"},  # type: ignore[list-item]
                                extra_body={"temperature": 0}) as stream:
        final = stream.get_final_message()
    (streamed,) = [b for b in final.content if b.type == "tool_use"]
    assert streamed.input == {"city": "Paris"} and final.stop_reason == "tool_use"


def test_a_tool_result_is_answered(client: anthropic.Anthropic) -> None:
    reply = client.messages.create(model=TOOLS_MODEL, max_tokens=30, tools=[WEATHER], messages=[  # type: ignore[list-item]
        {"role": "user", "content": "What is the weather in Paris?"},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "Sunny, 25 degrees"}]},
    ], extra_body={"temperature": 0})
    assert reply.content and reply.content[0].type == "text" and reply.stop_reason in ("end_turn", "max_tokens")


def test_thinking_on_a_model_that_cannot_think_is_ignored(client: anthropic.Anthropic) -> None:
    reply = client.messages.create(model=MODEL, messages=QUESTION,  # type: ignore[arg-type]
                                   thinking={"type": "enabled", "budget_tokens": 1024}, **BRIEF)
    assert [b.type for b in reply.content] == ["text"]


def test_an_unknown_model_is_an_anthropic_not_found_error(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as info:
        client.messages.create(model="nope", max_tokens=5, messages=QUESTION)  # type: ignore[arg-type]
    assert info.value.body == {"type": "error",
                               "error": {"type": "not_found_error", "message": "model 'nope' not found"}}


def test_bad_requests_are_anthropic_invalid_request_errors(client: anthropic.Anthropic, server: LiveServer) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        client.messages.create(model=MODEL, max_tokens=0, messages=QUESTION)  # type: ignore[arg-type]
    assert info.value.body == {"type": "error", "error": {
        "type": "invalid_request_error", "message": "max_tokens is required and must be positive"}}
    broken = httpx.post(f"{server.url}/v1/messages", content=b"{nope")
    assert broken.status_code == 400
    assert broken.json()["type"] == "error" and broken.json()["error"]["type"] == "invalid_request_error"
    counted = httpx.post(f"{server.url}/v1/messages/count_tokens", json={"model": "nope", "messages": QUESTION})
    assert counted.status_code == 404 and counted.json()["error"]["type"] == "not_found_error"
