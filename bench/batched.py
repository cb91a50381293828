"""Aggregate decode throughput of one runner at 1, 4 and 8 concurrent sequences.

    .venv/bin/python bench/batched.py [--model PATH] [--tokens 64] [--threads N] [--rounds 2]

One runner process (num_parallel 8, llama.cpp's default thread count: one per physical core)
serves N greedy generations at once; each gets a different prompt and exactly ``--tokens`` output
tokens (a grammar-free run to num_predict). Aggregate tokens/s is the sum of generated tokens over
the wall time from the first to the last generated token, so prompt processing is left out. The
best of ``--rounds`` runs is printed, with the machine's load average so a shared machine shows.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from pathlib import Path

from llmd.config import Config
from llmd.runner.handle import RunnerHandle, physical_cores, spawn_runner
from llmd.runner.request import (
    CompletionRequest,
    LoadOptions,
    SamplingOptions,
    TextDelta,
)
from loadgen import TOPICS  # the same stories the HTTP benchmark asks for

DEFAULT_MODEL = (
    Path(__file__).resolve().parent.parent
    / ".cache/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
)


def prompt(i: int) -> str:
    return (
        f"<|im_start|>user\nWrite a long story about {TOPICS[i % len(TOPICS)]}."
        "<|im_end|>\n<|im_start|>assistant\n"
    )


async def one(runner: RunnerHandle, i: int, tokens: int) -> tuple[int, int, int]:
    """(first token time, last token time, tokens generated) of one generation."""
    # A positive repeat penalty and min_p keep the story going; ignore_eos does not exist in
    # Ollama's options, so a story that ends early simply counts fewer tokens.
    sampling = SamplingOptions(temperature=0, num_predict=tokens)
    first = 0
    async for event in runner.generate(CompletionRequest(prompt(i), sampling)):
        if isinstance(event, TextDelta):
            first = first or time.perf_counter_ns()
        else:
            return (
                first or time.perf_counter_ns(),
                time.perf_counter_ns(),
                event.eval_count,
            )
    raise RuntimeError("no final statistics")


async def measure(runner: RunnerHandle, n: int, tokens: int) -> tuple[float, int]:
    results = await asyncio.gather(*(one(runner, i, tokens) for i in range(n)))
    start = min(r[0] for r in results)
    end = max(r[1] for r in results)
    generated = sum(r[2] for r in results)
    return generated / ((end - start) / 1e9), generated


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", type=Path, default=Path(os.environ.get("MODEL_GGUF", DEFAULT_MODEL))
    )
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    threads = args.threads or physical_cores()
    load = LoadOptions(num_ctx=1024, num_parallel=8, num_thread=threads)
    runner = await spawn_runner(args.model, load, Config())
    try:
        await measure(runner, 1, 8)  # warm-up: page in the weights
        rows = []
        for n in (1, 4, 8):
            best, generated = 0.0, 0
            for _ in range(args.rounds):
                rate, count = await measure(runner, n, args.tokens)
                if rate > best:
                    best, generated = rate, count
            rows.append((n, generated, best))
    finally:
        await runner.close()
    load1, load5, _ = os.getloadavg()
    print(
        f"model: {args.model.name}   threads: {threads}   cpus: {os.cpu_count()}   "
        f"load average: {load1:.2f} (1m) {load5:.2f} (5m)"
    )
    print(f"{'sequences':>9}  {'tokens':>6}  {'aggregate tok/s':>15}  {'speed-up':>8}")
    base = rows[0][2]
    for n, generated, rate in rows:
        print(f"{n:>9}  {generated:>6}  {rate:>15.1f}  {rate / base:>7.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
