"""A generation that fills its context: shifted by default, ended with `length` on shift: false."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from llmd.runner.engine import Engine
from llmd.runner.request import CompletionRequest, LoadOptions, SamplingOptions
from runner.drive import complete

pytestmark = pytest.mark.model

STORY = "<|im_start|>user\nWrite a very long story about the sea.<|im_end|>\n<|im_start|>assistant\n"


@pytest.fixture(scope="module")
def engine(gguf_path: Path) -> Iterator[Engine]:
    e = Engine(gguf_path, LoadOptions(num_ctx=256, num_parallel=1), threads=2)
    yield e
    e.close()


def test_a_generation_longer_than_its_context_shifts_and_goes_on(engine: Engine) -> None:
    wanted = engine.n_ctx_seq + 40
    _, done = complete(
        engine, CompletionRequest(STORY, SamplingOptions(temperature=0, num_predict=wanted))
    )
    assert done.eval_count == wanted
    assert done.done_reason == "length"


def test_with_shift_false_a_generation_stops_at_the_context_with_length(engine: Engine) -> None:
    request = CompletionRequest(
        STORY, SamplingOptions(temperature=0, num_predict=engine.n_ctx_seq + 40), shift=False
    )
    _, done = complete(engine, request)
    assert done.done_reason == "length"
    prompt = done.prompt_eval_count + done.prompt_cached
    assert prompt + done.eval_count == engine.n_ctx_seq
    # the slot gave up the shifted cells: a new prompt reuses only what is exact
    assert done.prompt_cached <= 8
