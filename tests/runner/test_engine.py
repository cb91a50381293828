"""The engine in-process: slot bookkeeping that the process boundary hides."""

from __future__ import annotations

from pathlib import Path

import pytest
from llmd.runner.engine import Engine
from llmd.runner.request import CompletionRequest, LoadOptions, SamplingOptions

pytestmark = pytest.mark.model


def chat(text: str) -> str:
    return f"<|im_start|>user\n{text}<|im_end|>\n<|im_start|>assistant\n"


def test_engine_frees_a_cancelled_slot_before_the_next_decode_step(
    gguf_path: Path,
) -> None:
    engine = Engine(gguf_path, LoadOptions(num_ctx=256, num_parallel=1), threads=2)
    try:
        engine.submit(
            1,
            CompletionRequest(
                chat("Count to a thousand."), SamplingOptions(temperature=0)
            ),
        )
        engine.step()
        engine.step()
        assert engine.busy
        assert engine.cancel(1)
        assert not engine.busy
        engine.submit(
            2,
            CompletionRequest(
                chat("Count to a thousand."),
                SamplingOptions(temperature=0, num_predict=4),
            ),
        )
        # The slot kept the cancelled request's KV: the same prompt reuses all but its last token.
        slot = engine._slots[0]
        assert slot.job is not None and len(slot.job.pending) == 1
        while engine.busy:
            engine.step()
    finally:
        engine.close()


def _text(events: list[object], job_id: int) -> str:
    from llmd.runner.request import TextDelta

    return "".join(e.text for j, e in events if j == job_id and isinstance(e, TextDelta))  # type: ignore[misc]


def test_a_failed_decode_fails_only_its_own_request_and_keeps_the_others_cache(
    gguf_path: Path,
) -> None:
    from llmd.errors import InvalidRequest
    from llmd.runner.engine import StepFailed

    greedy = SamplingOptions(temperature=0, num_predict=24)
    story = CompletionRequest(chat("Tell me about rivers."), greedy)
    engine = Engine(gguf_path, LoadOptions(num_ctx=256, num_parallel=2), threads=2)
    try:
        with pytest.raises(InvalidRequest, match="invalid token id 99999999 in context"):
            engine.submit(9, CompletionRequest("hi", greedy, context=(1, 99999999)))
        assert not engine.busy

        alone: list[object] = []
        engine.submit(1, story)
        while engine.busy:
            alone.extend(engine.step())
        expected = _text(alone, 1)

        events: list[object] = []
        engine.submit(2, story)
        engine.submit(3, CompletionRequest(chat("Count to a thousand."), greedy))
        def generating(job_id: int) -> bool:
            return any(s.job is not None and s.job.id == job_id and s.job.next_token is not None
                       for s in engine._slots)

        while not (generating(2) and generating(3)):
            events.extend(engine.step())
        victim = next(s for s in engine._slots if s.job is not None and s.job.id == 3)
        # Any decode failure of one sequence; here llama.cpp's own check of token ids, reached
        # past submit's check the way a corrupt id from anywhere else would reach it.
        victim.job.next_token = 99999999  # type: ignore[union-attr]
        with pytest.raises(StepFailed) as failed:
            engine.step()
        assert failed.value.job_ids == [3]
        events.extend(failed.value.events)
        survivor = next(s for s in engine._slots if s.job is not None)
        assert survivor.job is not None and survivor.job.id == 2
        assert survivor.cached  # its KV cache was not wiped
        while engine.busy:
            events.extend(engine.step())
        assert _text(events, 2) == expected
    finally:
        engine.close()


@pytest.mark.parametrize("kind", ["q8_0", "q4_0"])
def test_a_quantized_kv_cache_loads_and_generates(gguf_path: Path, kind: str) -> None:
    # llama.cpp turns flash attention on by itself for a quantized V cache (flash_attention unset)
    engine = Engine(
        gguf_path, LoadOptions(num_ctx=256, num_parallel=1, kv_cache_type=kind), threads=2
    )
    try:
        engine.submit(
            1,
            CompletionRequest(
                chat("What is the capital of France?"),
                SamplingOptions(temperature=0, num_predict=4),
            ),
        )
        text = ""
        while engine.busy:
            for _, event in engine.step():
                text += getattr(event, "text", "")
        assert text.strip()
    finally:
        engine.close()
