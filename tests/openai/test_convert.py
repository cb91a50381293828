"""OpenAI requests become native ones and native results become OpenAI objects, without a server."""

from __future__ import annotations

import base64
import json
import struct

import pytest
from llmd.errors import InvalidRequest
from llmd.inference.values import ChatRequest, Chunk, Final, GenerateRequest, ToolCall
from llmd.api.openai_convert import (
    SSE_DONE,
    ChatStream,
    CompletionStream,
    chat_request_from_openai,
    chat_response,
    completion_request_from_openai,
    embed_request_from_openai,
    embeddings_response,
    models_list,
    sse_frame,
)

FINAL = Final("stop", prompt_eval_count=5, eval_count=3)


def test_chat_request_maps_sampling_fields_to_options() -> None:
    converted = chat_request_from_openai({
        "model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 7,
        "seed": 1, "stop": "x", "top_p": 0.5, "stream": True,
        "stream_options": {"include_usage": True},
    })
    req = converted.request
    assert isinstance(req, ChatRequest)
    assert req.params.options == {"stop": ["x"], "num_predict": 7, "temperature": 1.0,
                                  "top_p": 0.5, "seed": 1}
    assert converted.stream and converted.include_usage


def test_max_completion_tokens_becomes_num_predict() -> None:
    req = chat_request_from_openai({
        "model": "m", "messages": [{"role": "user", "content": "hi"}], "max_completion_tokens": 9,
    }).request
    assert req.params.options["num_predict"] == 9


def test_stream_defaults_to_false() -> None:
    converted = chat_request_from_openai({"model": "m", "messages": [{"role": "user", "content": "x"}]})
    assert converted.stream is False


def test_response_format_json_object_and_json_schema() -> None:
    msgs = [{"role": "user", "content": "x"}]
    obj = chat_request_from_openai({"model": "m", "messages": msgs,
                                    "response_format": {"type": "json_object"}})
    assert obj.request.params.format == "json"
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    sch = chat_request_from_openai({"model": "m", "messages": msgs, "response_format": {
        "type": "json_schema", "json_schema": {"name": "x", "schema": schema}}})
    assert sch.request.params.format == schema


def test_empty_messages_and_n_other_than_one_are_refused() -> None:
    with pytest.raises(InvalidRequest, match=r"\[\] is too short - 'messages'"):
        chat_request_from_openai({"model": "m", "messages": []})
    with pytest.raises(InvalidRequest, match="n must be 1"):
        chat_request_from_openai({"model": "m", "messages": [{"role": "user", "content": "x"}], "n": 2})


def test_content_parts_carry_text_and_data_url_images() -> None:
    png = base64.b64encode(b"img").decode()
    req = chat_request_from_openai({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "what"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
    ]}]}).request
    assert req.messages[0].content == "what" and req.messages[0].images == (b"img",)


def test_http_image_urls_are_refused() -> None:
    with pytest.raises(InvalidRequest, match="image URLs are not currently supported"):
        chat_request_from_openai({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/x.png"}}]}]})


def test_tool_messages_get_the_name_of_their_call() -> None:
    req = chat_request_from_openai({"model": "m", "messages": [
        {"role": "assistant", "tool_calls": [{"id": "call_1", "type": "function",
                                              "function": {"name": "add", "arguments": "{\"a\": 1}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "2"},
    ]}).request
    assert req.messages[0].tool_calls[0].arguments == {"a": 1}
    assert req.messages[1].tool_name == "add"


def test_tool_choice_none_drops_the_tools() -> None:
    tools = [{"type": "function", "function": {"name": "f"}}]
    msgs = [{"role": "user", "content": "x"}]
    assert chat_request_from_openai({"model": "m", "messages": msgs, "tools": tools}).request.tools
    assert not chat_request_from_openai(
        {"model": "m", "messages": msgs, "tools": tools, "tool_choice": "none"}).request.tools


def test_completion_prompt_must_be_a_string() -> None:
    req = completion_request_from_openai({"model": "m", "prompt": "once", "top_p": 0}).request
    assert isinstance(req, GenerateRequest) and req.prompt == "once"
    assert req.params.options["top_p"] == 1.0
    with pytest.raises(InvalidRequest):
        completion_request_from_openai({"model": "m", "prompt": ["a", "b"]})


def test_embeddings_input_and_encoding_format() -> None:
    req, encoding = embed_request_from_openai({"model": "m", "input": "", "encoding_format": "base64"})
    assert req.inputs == ("",) and encoding == "base64"
    with pytest.raises(InvalidRequest, match="^invalid input$"):
        embed_request_from_openai({"model": "m", "input": []})
    with pytest.raises(InvalidRequest, match="Invalid value for 'encoding_format' = hex"):
        embed_request_from_openai({"model": "m", "input": "x", "encoding_format": "hex"})


def test_base64_embeddings_are_little_endian_float32() -> None:
    body = embeddings_response("m", [[0.5, -1.0]], 2, "base64")
    raw = base64.b64decode(body["data"][0]["embedding"])
    assert struct.unpack("<2f", raw) == (0.5, -1.0)
    assert body["usage"] == {"prompt_tokens": 2, "total_tokens": 2}


def test_chat_response_with_tool_calls_finishes_with_tool_calls() -> None:
    call = ToolCall("add", {"a": 1}, "abcd1234")
    body = chat_response("m", [Chunk(tool_calls=(call,))], FINAL)
    choice = body["choices"][0]
    assert body["id"].startswith("chatcmpl-") and body["object"] == "chat.completion"
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"][0]["function"] == {"name": "add", "arguments": '{"a": 1}'}
    assert body["usage"]["total_tokens"] == 8


def test_prompt_tokens_served_from_the_cache_are_reported_as_cached_tokens() -> None:
    final = Final("stop", prompt_eval_count=4, prompt_cached=96, eval_count=3)
    usage = chat_response("m", [Chunk(content="hi")], final)["usage"]
    assert usage["prompt_tokens"] == 100 and usage["total_tokens"] == 103
    assert usage["prompt_tokens_details"] == {"cached_tokens": 96}


def test_chat_stream_has_role_first_then_a_finish_chunk_then_usage() -> None:
    stream = ChatStream("m", include_usage=True)
    chunks = [*stream.chunks(Chunk(content="Hel")), *stream.chunks(Chunk(content="lo")),
              *stream.chunks(FINAL)]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "Hel"}
    assert chunks[1]["choices"][0]["delta"] == {"content": "lo"}
    assert chunks[2]["choices"] == [{"index": 0, "delta": {}, "finish_reason": "stop"}]
    assert chunks[3]["choices"] == [] and chunks[3]["usage"]["completion_tokens"] == 3
    assert len({c["id"] for c in chunks}) == 1 and len({c["created"] for c in chunks}) == 1


def test_completion_stream_ends_with_finish_reason_and_usage() -> None:
    stream = CompletionStream("m", include_usage=True)
    chunks = [*stream.chunks(Chunk(content="a")), *stream.chunks(Final("length", eval_count=1))]
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 1


def test_sse_frames_are_data_lines_ended_by_a_blank_line() -> None:
    assert sse_frame({"a": 1}) == b'data: {"a":1}\n\n'
    assert SSE_DONE == b"data: [DONE]\n\n"
    assert json.loads(sse_frame({"a": "é"})[6:]) == {"a": "é"}


def test_an_empty_model_list_is_an_empty_array() -> None:
    assert models_list([]) == {"object": "list", "data": []}
