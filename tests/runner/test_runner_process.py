"""A real runner process on SmolLM2: batching, sampling, stops, cancel, embeddings, load errors."""

from __future__ import annotations

import asyncio
import json
import math
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from llmd.config import Config
from llmd.errors import InvalidRequest, LimitExceeded, RunnerLoadFailed
from llmd.runner import protocol
from llmd.runner.grammar import json_schema_to_gbnf
from llmd.runner.handle import RunnerHandle, spawn_runner
from llmd.runner.request import (
    Completed,
    CompletionRequest,
    LoadOptions,
    SamplingOptions,
    TextDelta,
)

pytestmark = [pytest.mark.model, pytest.mark.asyncio(loop_scope="module")]

WORDS = ["apple", "river", "guitar", "planet", "yellow", "castle", "tiger", "window"]
GREEDY = SamplingOptions(temperature=0, num_predict=24)


def chat(text: str) -> str:
    return f"<|im_start|>user\n{text}<|im_end|>\n<|im_start|>assistant\n"


def repeat(word: str) -> str:
    return chat(f'Repeat the word "{word}" three times.')


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def runner(gguf_path: Path) -> AsyncIterator[RunnerHandle]:
    handle = await spawn_runner(
        gguf_path, LoadOptions(num_ctx=512, num_parallel=8), Config()
    )
    yield handle
    await handle.close()


async def complete(
    runner: RunnerHandle, prompt: str, sampling: SamplingOptions = GREEDY, **kw: object
) -> tuple[str, Completed]:
    text = ""
    async for event in runner.generate(CompletionRequest(prompt, sampling, **kw)):  # type: ignore[arg-type]
        if isinstance(event, TextDelta):
            text += event.text
        else:
            return text, event
    raise AssertionError("the stream ended without a Completed event")


async def test_the_runner_reports_its_slots_and_per_slot_context(
    runner: RunnerHandle,
) -> None:
    assert runner.info is not None
    assert runner.info.n_parallel == 8
    assert runner.info.n_ctx == 512
    assert runner.pid != os.getpid()


async def test_eight_concurrent_greedy_generations_each_match_their_own_single_run(
    runner: RunnerHandle,
) -> None:
    alone = [(await complete(runner, repeat(word)))[0] for word in WORDS]
    together = await asyncio.gather(*(complete(runner, repeat(word)) for word in WORDS))
    for word, single, (batched, done) in zip(WORDS, alone, together):
        assert word in single
        assert batched == single
        assert not any(other in batched for other in WORDS if other != word)
        assert done.eval_count > 0


async def test_a_seeded_request_gives_the_same_text_twice(runner: RunnerHandle) -> None:
    seeded = SamplingOptions(temperature=0.9, seed=1234, num_predict=20)
    first, _ = await complete(runner, chat("Tell me a story."), seeded)
    second, _ = await complete(runner, chat("Tell me a story."), seeded)
    assert first == second
    greedy_first, _ = await complete(runner, chat("Tell me a story."), GREEDY)
    greedy_second, _ = await complete(runner, chat("Tell me a story."), GREEDY)
    assert greedy_first == greedy_second


async def test_a_stop_string_ends_generation_and_is_not_returned(
    runner: RunnerHandle,
) -> None:
    prompt = chat("What is the capital of France?")
    full, _ = await complete(runner, prompt)
    assert "Paris" in full
    text, done = await complete(
        runner, prompt, SamplingOptions(temperature=0, num_predict=24, stop=("Paris",))
    )
    assert done.done_reason == "stop"
    assert "Paris" not in text
    assert full.startswith(text)


async def test_num_predict_limits_the_tokens_and_reports_length(
    runner: RunnerHandle,
) -> None:
    text, done = await complete(
        runner,
        chat("Write a long essay."),
        SamplingOptions(temperature=0, num_predict=5),
    )
    assert done.done_reason == "length"
    assert done.eval_count == 5
    assert text
    assert done.prompt_eval_count > 0
    assert done.prompt_eval_duration > 0 and done.eval_duration > 0
    assert len(done.context) == done.prompt_eval_count + done.prompt_cached + done.eval_count


async def test_an_end_of_generation_token_reports_stop(runner: RunnerHandle) -> None:
    _, done = await complete(
        runner, chat("Say hi."), SamplingOptions(temperature=0, num_predict=200)
    )
    assert done.done_reason == "stop"
    assert done.eval_count < 200


async def test_without_shift_a_full_context_ends_generation_with_length(
    runner: RunnerHandle,
) -> None:
    # A plain continuation that the model keeps counting, starting near the end of the context.
    counting = ", ".join(str(n) for n in range(1, 140)) + ","
    _, done = await complete(runner, counting, SamplingOptions(temperature=0), shift=False)
    assert done.done_reason == "length"
    assert len(done.context) == 512


async def test_an_overlong_prompt_fails_clearly_unless_truncated(
    runner: RunnerHandle,
) -> None:
    prompt = chat("word " * 1000)
    with pytest.raises(InvalidRequest, match="exceeds the context length"):
        await complete(runner, prompt, truncate=False)
    _, done = await complete(
        runner, prompt, SamplingOptions(temperature=0, num_predict=4)
    )
    assert done.prompt_eval_count < 512


async def test_a_json_grammar_constrains_the_output_to_json(
    runner: RunnerHandle,
) -> None:
    # A schema that closes the object after two keys, and room to finish: the grammar is held
    # to a whole object every run (free-form JSON from greedy SmolLM2 repeats a key until
    # num_predict cuts it, and a cut-off prefix proved nothing).
    schema = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
              "required": ["name", "age"]}
    text, done = await complete(
        runner,
        chat("Describe a cat as JSON."),
        SamplingOptions(temperature=0, num_predict=200, grammar=json_schema_to_gbnf(schema)),
    )
    assert done.done_reason == "stop", f"cut off after {done.eval_count} tokens: {text!r}"
    value = json.loads(text)
    assert isinstance(value, dict) and set(value) == {"name", "age"}
    assert isinstance(value["name"], str) and isinstance(value["age"], int)


async def test_a_grammar_that_does_not_parse_is_an_invalid_request(
    runner: RunnerHandle,
) -> None:
    with pytest.raises(InvalidRequest):
        await complete(runner, "hi", SamplingOptions(grammar="root ::= ("))


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def idle_cpu(pid: int, seconds: float = 1.0) -> float:
    """CPU time a process spends over ``seconds``: near zero once it is blocked waiting."""
    before = cpu_seconds(pid)
    await asyncio.sleep(seconds)
    return cpu_seconds(pid) - before


async def test_a_closed_stream_cancels_and_the_runner_serves_on(gguf_path: Path) -> None:
    # One slot and a generation that would run for minutes: only a real cancel frees it. The
    # runner's CPU time shows it stopped computing (an 8-slot runner would serve the next
    # request anyway and hide a cancel that never happened).
    single = await spawn_runner(gguf_path, LoadOptions(num_ctx=4096, num_parallel=1), Config())
    try:
        stream = single.generate(CompletionRequest(
            chat("Count to one thousand."), SamplingOptions(temperature=0, num_predict=100000)))
        first = await anext(stream)
        assert isinstance(first, TextDelta)
        await stream.aclose()  # type: ignore[attr-defined]
        await asyncio.sleep(0.5)  # the cancel frame, then the step in progress
        assert await idle_cpu(single.pid) < 0.2
        text, done = await complete(single, repeat("apple"))
        assert "apple" in text and done.done_reason in ("stop", "length")
    finally:
        await single.close()


async def test_a_request_too_large_for_a_frame_is_refused_and_the_runner_serves_on(
    runner: RunnerHandle,
) -> None:
    pid = runner.pid
    with pytest.raises(LimitExceeded, match="too large for the model runner"):
        await complete(runner, "a" * (protocol.MAX_FRAME + 1))
    text, _ = await complete(runner, repeat("river"))
    assert "river" in text and runner.pid == pid and runner.alive


async def test_an_oversized_frame_is_skipped_by_the_runner_not_fatal(
    runner: RunnerHandle,
) -> None:
    # what a main process without the check above used to send: the runner died of it
    size = protocol.MAX_FRAME + 1
    runner._writer.write(protocol.HEADER.pack(size) + b" " * size)
    text, _ = await complete(runner, repeat("guitar"))
    assert "guitar" in text and runner.alive


async def test_a_cancelled_embedding_stops_between_inputs(gguf_path: Path) -> None:
    single = await spawn_runner(gguf_path, LoadOptions(num_ctx=512, num_parallel=1), Config())
    try:
        task = asyncio.create_task(single.embed(["word " * 50] * 4000, True))
        await asyncio.sleep(1.0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # 4000 inputs are tens of seconds of work: a runner that ignored the cancel is still
        # busy after these ten looks; one that stopped is idle at the first on a quiet machine.
        for _ in range(10):
            if await idle_cpu(single.pid) < 0.2:
                break
        else:
            raise AssertionError("the runner kept embedding after the cancel")
        result = await single.embed(["still here"], True)
        assert len(result.embeddings) == 1
    finally:
        await single.close()


async def test_logprobs_come_with_each_token_when_asked(runner: RunnerHandle) -> None:
    events = [
        e
        async for e in runner.generate(
            CompletionRequest(
                chat("Hi"),
                SamplingOptions(temperature=0, num_predict=3),
                logprobs=True,
                top_logprobs=2,
            )
        )
    ]
    logprobs = [lp for e in events if isinstance(e, TextDelta) for lp in e.logprobs]
    assert len(logprobs) == 3
    for lp in logprobs:
        assert lp.logprob <= 0
        assert len(lp.top_logprobs) == 2
        assert lp.top_logprobs[0].logprob >= lp.logprob  # greedy picks the most likely


async def test_tokenize_and_detokenize_round_trip(runner: RunnerHandle) -> None:
    tokens = await runner.tokenize("Hello, world!")
    assert tokens and all(isinstance(t, int) for t in tokens)
    assert await runner.detokenize(tokens) == "Hello, world!"


async def test_embeddings_are_unit_length_and_differ_by_input(
    runner: RunnerHandle,
) -> None:
    result = await runner.embed(
        ["The cat sat on the mat.", "Quantum chromodynamics"], True
    )
    assert len(result.embeddings) == 2
    for vector in result.embeddings:
        assert len(vector) == 576
        assert math.isclose(math.fsum(x * x for x in vector), 1.0, rel_tol=1e-6)
    assert result.embeddings[0] != result.embeddings[1]
    assert result.prompt_eval_count > 0


async def test_an_embed_lets_the_generating_slots_move_between_its_inputs(
    runner: RunnerHandle,
) -> None:
    deltas = 0

    async def generate() -> None:
        nonlocal deltas
        request = CompletionRequest(
            chat("Count from one to one hundred."), SamplingOptions(temperature=0, num_predict=120)
        )
        async for event in runner.generate(request):
            deltas += isinstance(event, TextDelta)

    task = asyncio.create_task(generate())
    await asyncio.sleep(0)  # the completion frame goes out first, the embed right behind it
    result = await runner.embed([f"sentence number {i}" for i in range(40)], True)
    seen = deltas  # text the generation got while the embed ran
    await task
    assert len(result.embeddings) == 40
    # One decode step of the slots runs between two inputs; an embed once held them for all 40.
    assert seen >= 10


async def test_an_embedding_input_beyond_the_context_fails_unless_truncated(
    runner: RunnerHandle,
) -> None:
    with pytest.raises(InvalidRequest, match="exceeds the context length"):
        await runner.embed(["word " * 1000], False)
    result = await runner.embed(["word " * 1000], True)
    assert result.prompt_eval_count == 512


async def test_a_corrupt_model_file_is_a_load_error_and_leaves_no_process(
    tmp_path: Path,
) -> None:
    bad = tmp_path / "corrupt.gguf"
    bad.write_bytes(b"GGUF" + os.urandom(4096))
    before = _children()
    with pytest.raises(RunnerLoadFailed, match="unable to load model"):
        await spawn_runner(bad, LoadOptions(num_ctx=256), Config(load_timeout=120))
    assert _children() <= before


async def test_a_missing_model_file_is_a_load_error(tmp_path: Path) -> None:
    before = _children()
    with pytest.raises(RunnerLoadFailed, match="no such file"):
        await spawn_runner(tmp_path / "absent.gguf", LoadOptions(num_ctx=256), Config())
    assert _children() <= before


def _children() -> set[int]:
    """PIDs of our child processes, zombies included."""
    me = os.getpid()
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == me:
            found.add(int(entry.name))
    return found


async def test_a_load_past_its_deadline_fails_and_leaves_no_process(
    gguf_path: Path,
) -> None:
    before = _children()
    with pytest.raises(
        RunnerLoadFailed, match="timed out waiting for llama runner to start"
    ):
        await spawn_runner(
            gguf_path, LoadOptions(num_ctx=256), Config(load_timeout=0.001)
        )
    assert _children() <= before


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


async def test_the_runner_spins_only_briefly_at_llama_cpp_thread_barriers(
    runner: RunnerHandle, gguf_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # libgomp's default long spin starves the compute threads whenever the daemon needs a core;
    # sleeping at once costs a futex wake per graph node. An explicit setting still wins.
    if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
        assert _environ(runner.pid)["GOMP_SPINCOUNT"] == "10000"
    monkeypatch.setenv("OMP_WAIT_POLICY", "passive")
    monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
    own = await spawn_runner(gguf_path, LoadOptions(num_ctx=512), Config())
    try:
        env = _environ(own.pid)
        assert env["OMP_WAIT_POLICY"] == "passive"
        assert "GOMP_SPINCOUNT" not in env
    finally:
        await own.close()
