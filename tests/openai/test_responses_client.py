"""The official openai package's ``client.responses`` works against llmd's /v1/responses unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import openai
import pydantic
import pytest
from harness import LiveServer, create_smollm2
from inference.conftest import TOOLS_TEMPLATE

MODEL = "smollm2:135m"
TOOLS_MODEL = "smollm2-tools:135m"
QUESTION = "What is the capital of France?"
BRIEF = {"instructions": "Answer in one word.", "max_output_tokens": 40, "temperature": 0}
WEATHER = {"type": "function", "name": "get_weather", "description": "The weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string", "enum": ["Paris"]}},
                          "required": ["city"]}}


@pytest.fixture(scope="module")
def tools_model(server: LiveServer, gguf_path: Path) -> str:
    create_smollm2(server.url, gguf_path, TOOLS_MODEL, template=TOOLS_TEMPLATE)
    return TOOLS_MODEL


def test_a_response_has_openais_shape(client: openai.OpenAI) -> None:
    reply = client.responses.create(model=MODEL, input=QUESTION, instructions="Answer in one word.",
                                    max_output_tokens=24, temperature=0)
    assert reply.object == "response" and reply.id.startswith("resp_")
    assert reply.status in ("completed", "incomplete") and reply.output_text
    assert reply.instructions == "Answer in one word." and reply.previous_response_id is None
    message = reply.output[-1]
    assert message.type == "message" and message.role == "assistant"
    assert reply.usage and reply.usage.total_tokens == reply.usage.input_tokens + reply.usage.output_tokens
    assert reply.usage.output_tokens > 0


def test_max_output_tokens_cuts_the_answer_as_an_incomplete_response(client: openai.OpenAI) -> None:
    reply = client.responses.create(model=MODEL, input="Tell me a long story.", max_output_tokens=3,
                                    temperature=0)
    assert reply.status == "incomplete" and reply.incomplete_details
    assert reply.incomplete_details.reason == "max_output_tokens"
    assert reply.usage and reply.usage.output_tokens == 3


def test_a_streamed_response_sends_the_responses_event_sequence(client: openai.OpenAI) -> None:
    events = list(client.responses.create(model=MODEL, input=QUESTION, stream=True, **BRIEF))  # type: ignore[arg-type]
    types = [e.type for e in events]
    assert types[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    assert types[-4:] == ["response.output_text.done", "response.content_part.done",
                          "response.output_item.done", "response.completed"]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    done = events[-1].response  # type: ignore[union-attr]
    assert text and done.output_text == text
    assert done.usage and done.usage.output_tokens > 0


def test_the_stream_helper_accumulates_the_final_response(client: openai.OpenAI) -> None:
    with client.responses.stream(model=MODEL, input=QUESTION, **BRIEF) as stream:  # type: ignore[arg-type]
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert final.status == "completed" and final.output_text == "".join(deltas)


def test_a_json_schema_text_format_gives_valid_json(client: openai.OpenAI) -> None:
    class City(pydantic.BaseModel):
        name: str
        country: str

    reply = client.responses.parse(model=MODEL, input="Describe Paris as JSON.", text_format=City,
                                   temperature=0, max_output_tokens=60)
    assert isinstance(reply.output_parsed, City)


def test_a_function_call_comes_back_as_a_function_call_item(client: openai.OpenAI, tools_model: str) -> None:
    reply = client.responses.create(model=tools_model, input="What is the weather in Paris?",
                                    tools=[WEATHER], tool_choice="required", temperature=0,  # type: ignore[list-item]
                                    max_output_tokens=60)
    (call,) = [item for item in reply.output if item.type == "function_call"]
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Paris"}
    assert call.call_id and call.status == "completed"

    streamed = list(client.responses.create(model=tools_model, input="What is the weather in Paris?",
                                            tools=[WEATHER], tool_choice="required", temperature=0,  # type: ignore[list-item]
                                            max_output_tokens=60, stream=True))
    arguments = [e for e in streamed if e.type == "response.function_call_arguments.done"]
    assert len(arguments) == 1 and json.loads(arguments[0].arguments) == {"city": "Paris"}
    assert streamed[-1].type == "response.completed"


def test_a_function_call_output_is_answered(client: openai.OpenAI, tools_model: str) -> None:
    reply = client.responses.create(model=tools_model, tools=[WEATHER], temperature=0,  # type: ignore[list-item]
                                    max_output_tokens=30, input=[
        {"role": "user", "content": "What is the weather in Paris?"},
        {"type": "function_call", "call_id": "call_1", "name": "get_weather",
         "arguments": '{"city": "Paris"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": "Sunny, 25 degrees"},
    ])
    assert reply.output_text


@pytest.mark.parametrize("extra, message", [
    ({"previous_response_id": "resp_123"}, "previous_response_id is not supported"),
    ({"background": True}, "background is not supported"),
])
def test_stored_and_background_responses_are_a_clear_400(
    client: openai.OpenAI, extra: dict[str, object], message: str
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model=MODEL, input=QUESTION, max_output_tokens=4, **extra)  # type: ignore[arg-type]
    assert message in info.value.message
    assert info.value.body["type"] == "invalid_request_error"  # type: ignore[index]


def test_an_unknown_model_is_not_found(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.responses.create(model="nope", input=QUESTION, max_output_tokens=4)
    assert info.value.body == {"message": "model 'nope' not found", "type": "not_found_error",
                               "param": None, "code": None}
