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
