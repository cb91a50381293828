"""The native inference bodies are validated at the edge with Ollama's wording."""

from __future__ import annotations

import base64
import math

import pytest
from llmd.api.inference_schemas import (
    parse_chat,
    parse_embed,
    parse_embeddings,
    parse_format,
    parse_generate,
    parse_think,
)
from llmd.errors import InvalidRequest


def test_generate_request_keeps_every_field() -> None:
    image = base64.b64encode(b"\x89PNG").decode()
    req = parse_generate({
        "model": "m", "prompt": "p", "suffix": "s", "system": "sys", "template": "{{ .Prompt }}",
        "context": [1, 2], "stream": False, "format": "json", "keep_alive": "10m",
        "images": [image], "options": {"temperature": 0}, "think": "high", "truncate": False,
        "shift": False, "logprobs": True, "top_logprobs": 3,
    })
    assert (req.model, req.prompt, req.suffix, req.system) == ("m", "p", "s", "sys")
    assert req.context == (1, 2) and req.images == (b"\x89PNG",) and req.stream is False
    p = req.params
    assert p.format == "json" and p.keep_alive == 600 and p.think == "high"
    assert p.truncate is False and p.shift is False and p.logprobs and p.top_logprobs == 3
    assert p.options == {"temperature": 0}


def test_absent_stream_means_stream_and_unknown_fields_are_ignored() -> None:
    req = parse_generate({"model": "m", "unknown": 1})
    assert req.stream is True and req.params.keep_alive is None


def test_unitless_keep_alive_string_is_refused_with_go_wording() -> None:
    with pytest.raises(InvalidRequest, match=r'^time: missing unit in duration "300"$'):
        parse_generate({"model": "m", "keep_alive": "300"})


def test_negative_keep_alive_means_forever() -> None:
    assert parse_chat({"model": "m", "keep_alive": -1}).params.keep_alive == math.inf


def test_top_logprobs_outside_0_to_20_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="top_logprobs must be between 0 and 20"):
        parse_chat({"model": "m", "top_logprobs": 21})


def test_format_other_than_json_or_a_schema_is_refused() -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_format("xml")
    assert info.value.message == (
        'invalid format: "\\"xml\\""; expected "json" or a valid JSON Schema object'
    )
    assert parse_format({"type": "object"}) == {"type": "object"}
    assert parse_format("") is None


def test_think_accepts_bools_and_levels_only() -> None:
    assert parse_think(True) is True and parse_think("low") == "low"
    with pytest.raises(InvalidRequest, match='invalid think value: "deep"'):
        parse_think("deep")


def test_raw_mode_refuses_template_system_and_context() -> None:
    with pytest.raises(InvalidRequest, match="raw mode does not support template, system, or context"):
        parse_generate({"model": "m", "raw": True, "system": "x"})


def test_wrongly_typed_field_reads_like_a_go_json_error() -> None:
    with pytest.raises(InvalidRequest, match="cannot unmarshal number into Go struct field GenerateRequest.prompt"):
        parse_generate({"model": "m", "prompt": 3})


def test_images_must_be_base64() -> None:
    with pytest.raises(InvalidRequest, match="base64"):
        parse_generate({"model": "m", "images": ["data:image/png;base64,AAAA"]})


def test_chat_without_model_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="^model is required$"):
        parse_chat({"messages": []})


def test_chat_messages_are_lower_cased_and_carry_tool_calls() -> None:
    req = parse_chat({
        "model": "m",
        "messages": [
            {"Role": "USER", "content": "hi"},
            {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": {"a": 1}}}]},
            {"role": "tool", "content": "42", "tool_name": "f"},
        ],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
    })
    assert req.messages[0].role == "user" and req.messages[0].content == "hi"
    call = req.messages[1].tool_calls[0]
    assert call.name == "f" and call.arguments == {"a": 1}
    assert req.messages[2].tool_name == "f" and req.tools[0].name == "f"


def test_embed_input_is_a_string_or_a_list_of_strings() -> None:
    assert parse_embed({"model": "m", "input": "a"}).inputs == ("a",)
    assert parse_embed({"model": "m", "input": ["a", "b"]}).inputs == ("a", "b")
    assert parse_embed({"model": "m", "input": []}).inputs == ()
    with pytest.raises(InvalidRequest, match="^invalid input type$"):
        parse_embed({"model": "m", "input": [1]})
    with pytest.raises(InvalidRequest, match="^invalid input type$"):
        parse_embed({"model": "m", "input": {"x": 1}})


def test_legacy_embeddings_take_one_prompt() -> None:
    req = parse_embeddings({"model": "m", "prompt": "hello"})
    assert req.inputs == ("hello",)
