"""llama.cpp's ``llama-batched-bench``: decode throughput with no server at all, the ceiling for
aggregate tokens/s at a given number of parallel sequences."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path


def parse_jsonl(output: str) -> dict[int, float]:
    """S_TG (generation tokens/s over all sequences) by parallel sequences, from
    ``--output-format jsonl``; other lines (llama.cpp's log) are skipped."""
    rates: dict[int, float] = {}
    for line in output.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        row = json.loads(line)
        if "pl" in row and "speed_tg" in row:
            rates[int(row["pl"])] = float(row["speed_tg"])
    if not rates:
        raise ValueError("no result rows in llama-batched-bench output")
    return rates


def run(binary: Path, gguf: Path, threads: int, tokens: int, levels: list[int]) -> dict[int, float]:
    # Each sequence needs 32 prompt + `tokens` cells in its share of the context.
    ctx = max(8192, max(levels) * (32 + tokens) * 2)
    argv = [
        str(binary),
        "-m",
        str(gguf),
        "-c",
        str(ctx),
        "-b",
        "512",
        "-ub",
        "512",
        "-npp",
        "32",
        "-ntg",
        str(tokens),
        "-npl",
        ",".join(map(str, levels)),
        "-t",
        str(threads),
        "--output-format",
        "jsonl",
    ]
    result = subprocess.run(argv, check=False, capture_output=True, text=True)
    if result.returncode != 0:
        tail = result.stderr.strip().splitlines()[-3:]
        raise RuntimeError(f"llama-batched-bench failed ({result.returncode}): {' / '.join(tail)}")
    return parse_jsonl(result.stdout)
