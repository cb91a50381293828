"""Ollama's option table: typing request options, checking create parameters, layering them."""

from __future__ import annotations

import pytest
from llmd.errors import InvalidOption
from llmd.runner.options import build_options, check_parameters, coerce_option
from llmd.runner.request import LoadOptions, SamplingOptions


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("temperature", 1, 1.0),
        ("temperature", 0.5, 0.5),
        ("num_ctx", 2048.9, 2048),  # Go truncates a JSON float into an int field
        ("seed", -1, -1),
        ("use_mmap", False, False),
        ("stop", ["a", "b"], ["a", "b"]),
        ("stop", "a", ["a"]),
    ],
)
def test_request_options_are_typed_like_ollamas_frommap(key: str, value: object, expected: object) -> None:
    assert coerce_option(key, value) == expected


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("temperature", "hot", 'option "temperature" must be of type float32'),
        ("num_ctx", "4096", 'option "num_ctx" must be of type integer'),
        ("num_ctx", True, 'option "num_ctx" must be of type integer'),
        ("use_mmap", 1, 'option "use_mmap" must be of type boolean'),
        ("stop", 3, 'option "stop" must be of type array'),
        ("stop", ["a", 1], 'option "stop" must be of an array of strings'),
    ],
)
def test_wrongly_typed_options_are_refused_with_ollamas_message(
    key: str, value: object, message: str
) -> None:
    with pytest.raises(InvalidOption) as err:
        coerce_option(key, value)
    assert str(err.value) == message


def test_create_parameters_accept_text_or_json_values() -> None:
    assert check_parameters({"temperature": "0.3", "top_k": 5, "stop": "x", "mirostat": 2}) == {
        "temperature": 0.3,
        "top_k": 5,
        "stop": ["x"],
    }


def test_an_unknown_create_parameter_is_refused() -> None:
    with pytest.raises(InvalidOption, match="^unknown parameter 'numa'$"):
        check_parameters({"numa": True})


def test_request_options_beat_model_params_which_beat_defaults() -> None:
    load, sampling = build_options(
        {"temperature": 0.2, "num_ctx": 8192, "stop": ["<|im_end|>"]},
        {"temperature": 0.9, "seed": 42, "numa": True, "num_batch": None},
        default_num_ctx=4096,
        num_parallel=3,
    )
    assert load == LoadOptions(num_ctx=8192, num_parallel=3)
    assert sampling == SamplingOptions(temperature=0.9, seed=42, stop=("<|im_end|>",))


def test_the_configured_context_length_is_the_default() -> None:
    built = build_options({}, None, default_num_ctx=2048, num_parallel=1)
    assert built.load.num_ctx == 2048
    assert built.sampling == SamplingOptions()


def test_a_bad_request_option_is_refused_even_when_the_model_sets_it() -> None:
    with pytest.raises(InvalidOption):
        build_options({"top_k": 10}, {"top_k": "many"}, default_num_ctx=2048, num_parallel=1)


def test_a_mistyped_model_parameter_is_skipped_not_fatal() -> None:
    built = build_options({"temperature": "warm", "top_k": 7}, {}, default_num_ctx=2048, num_parallel=1)
    assert built.sampling.temperature == SamplingOptions().temperature
    assert built.sampling.top_k == 7
