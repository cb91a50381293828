"""The official openai package works against llmd's /v1 routes unchanged."""

from __future__ import annotations

import json
import math
from pathlib import Path

import httpx
import openai
import pydantic
import pytest
from harness import LiveServer, create_smollm2
from inference.conftest import TOOLS_TEMPLATE

MODEL = "smollm2:135m"
USER = [{"role": "user", "content": "What is the capital of France?"}]


def test_chat_completion_has_openais_shape(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model=MODEL, messages=USER, max_tokens=8, temperature=0)
    assert reply.object == "chat.completion" and reply.id.startswith("chatcmpl-")
    choice = reply.choices[0]
    assert choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason in ("stop", "length")
    assert reply.usage and reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_streamed_chat_sends_role_first_then_finish_then_usage(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(
        model=MODEL, messages=USER, max_tokens=8, temperature=0, stream=True,
        stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    finish = chunks[-2]
    assert finish.choices[0].finish_reason in ("stop", "length") and not finish.choices[0].delta.content
    usage = chunks[-1]
    assert usage.choices == [] and usage.usage and usage.usage.completion_tokens > 0
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def test_the_sse_stream_ends_with_done(server: LiveServer) -> None:
    with server.http.stream("POST", "/v1/chat/completions", json={
            "model": MODEL, "messages": USER, "max_tokens": 3, "stream": True}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        frames = [line for line in response.iter_lines() if line]
    assert all(f.startswith("data: ") for f in frames) and frames[-1] == "data: [DONE]"
    assert json.loads(frames[0][6:])["object"] == "chat.completion.chunk"


def test_response_format_json_schema_gives_valid_json(client: openai.OpenAI) -> None:
    class City(pydantic.BaseModel):
        name: str
        country: str

    reply = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Describe Paris as JSON."}],
        temperature=0, max_tokens=60,
        response_format={"type": "json_schema",
                         "json_schema": {"name": "city", "schema": City.model_json_schema()}})
    City.model_validate_json(reply.choices[0].message.content or "")


def test_completions_return_text(client: openai.OpenAI) -> None:
    reply = client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=6,
                                      temperature=0)
    assert reply.object == "text_completion" and reply.choices[0].text
    streamed = list(client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=6,
                                              temperature=0, stream=True))
    assert "".join(c.choices[0].text for c in streamed if c.choices) == reply.choices[0].text


def test_embeddings_decode_from_the_default_base64(client: openai.OpenAI) -> None:
    reply = client.embeddings.create(model=MODEL, input=["hello", "world"])
    assert [d.index for d in reply.data] == [0, 1]
    vector = reply.data[0].embedding
    assert len(vector) > 8 and all(isinstance(v, float) for v in vector)
    assert math.isclose(math.sqrt(sum(v * v for v in vector)), 1.0, rel_tol=1e-3)
    floats = client.embeddings.create(model=MODEL, input="hello", encoding_format="float")
    assert floats.data[0].embedding == pytest.approx(vector, rel=1e-5)


def test_embeddings_honour_dimensions_by_truncating_and_renormalising(client: openai.OpenAI) -> None:
    full = client.embeddings.create(model=MODEL, input="hello", encoding_format="float").data[0]
    short = client.embeddings.create(model=MODEL, input="hello", encoding_format="float",
                                     dimensions=16).data[0]
    assert len(short.embedding) == 16
    norm = math.sqrt(sum(v * v for v in full.embedding[:16]))
    assert short.embedding == pytest.approx([v / norm for v in full.embedding[:16]], rel=1e-4)


def test_models_list_and_retrieve(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert MODEL in ids
    model = client.models.retrieve(MODEL)
    assert model.id == MODEL and model.owned_by == "library"


def test_unknown_model_raises_not_found(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="nope", messages=USER)
    assert info.value.body == {"message": "model 'nope' not found", "type": "not_found_error",
                               "param": None, "code": None}
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nope:latest")


def test_empty_messages_and_n_above_one_are_bad_requests(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=MODEL, messages=[])
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=MODEL, messages=USER, n=2)


def test_bad_json_is_an_openai_shaped_400(server: LiveServer) -> None:
    response = httpx.post(f"{server.url}/v1/chat/completions", content=b"{nope")
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_a_tool_call_comes_back_in_openais_shape(
    server: LiveServer, client: openai.OpenAI, gguf_path: Path
) -> None:
    create_smollm2(server.url, gguf_path, "smollm2-tools:135m", template=TOOLS_TEMPLATE)
    tool = {"type": "function", "function": {
        "name": "get_weather", "parameters": {
            "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
    forced = {"type": "object", "properties": {
        "name": {"type": "string", "enum": ["get_weather"]},
        "arguments": {"type": "object", "properties": {"city": {"type": "string", "enum": ["Paris"]}},
                      "required": ["city"]}},
        "required": ["name", "arguments"]}
    reply = client.chat.completions.create(
        model="smollm2-tools:135m", temperature=0, tools=[tool],  # type: ignore[list-item]
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        response_format={"type": "json_schema", "json_schema": {"name": "call", "schema": forced}})
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = (choice.message.tool_calls or [])[0]
    assert call.type == "function" and call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"city": "Paris"}  # type: ignore[union-attr]
