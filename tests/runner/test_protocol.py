"""The runner wire protocol: frames, typed values and typed errors survive the trip."""

from __future__ import annotations

import pytest
from llmd import errors
from llmd.runner import protocol
from llmd.runner.request import (
    Completed,
    CompletionRequest,
    SamplingOptions,
    TokenLogprob,
)


def test_frames_split_at_any_byte_decode_to_the_same_messages() -> None:
    messages: list[protocol.Message] = [
        {"type": "cancel", "id": 3},
        {"type": "deltas", "items": [[1, "héllo"], [2, " wörld"]]},
        {"type": "shutdown"},
    ]
    wire = b"".join(protocol.encode(m) for m in messages)
    buffer = protocol.FrameBuffer()
    out: list[protocol.Message] = []
    for i in range(len(wire)):
        out.extend(buffer.feed(wire[i : i + 1]))
    assert out == messages


def test_a_completion_request_round_trips_through_the_wire_form() -> None:
    request = CompletionRequest(
        prompt="hi",
        sampling=SamplingOptions(
            temperature=0.1, stop=("a", "b"), grammar='root ::= "x"'
        ),
        context=(1, 2, 3),
        logprobs=True,
        top_logprobs=2,
        truncate=False,
        shift=False,
    )
    assert protocol.request_from_wire(protocol.request_to_wire(request)) == request


def test_final_statistics_round_trip() -> None:
    done = Completed("length", 5, 1000, 7, 2000, (1, 2), prompt_cached=3)
    message = protocol.done_message(9, done)
    assert (
        protocol.completed_from(protocol.decode(protocol.encode(message)[4:])) == done
    )  # type: ignore[arg-type]


def test_the_stop_string_that_ended_a_generation_round_trips() -> None:
    done = Completed("stop", 5, 1000, 7, 2000, (1, 2), stop_sequence="END")
    message = protocol.done_message(9, done)
    assert protocol.completed_from(protocol.decode(protocol.encode(message)[4:])) == done  # type: ignore[arg-type]


def test_logprobs_round_trip() -> None:
    values = (TokenLogprob("a", -0.5, (97,), (TokenLogprob("b", -1.0, (98,)),)),)
    assert protocol.logprobs_from_wire(protocol.logprobs_to_wire(values)) == values


@pytest.mark.parametrize(
    "error",
    [errors.InvalidRequest("bad"), errors.RunnerLoadFailed("no"), errors.QueueFull()],
)
def test_an_error_frame_becomes_the_same_llmd_error_class(
    error: errors.LlmdError,
) -> None:
    back = protocol.error_from(protocol.error_message(1, error))
    assert type(back) is type(error)
    assert str(back) == str(error)


def test_an_unknown_error_name_becomes_a_runner_error() -> None:
    back = protocol.error_from(
        {"type": "error", "id": None, "error": "KeyError", "message": "x"}
    )
    assert type(back) is errors.RunnerError
    assert str(back) == "x"


def test_a_frame_that_is_not_a_typed_object_is_refused() -> None:
    with pytest.raises(ValueError):
        protocol.decode(b"[1, 2]")
