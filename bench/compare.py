"""llmd against llama.cpp's own llama-server, side by side, on the same GGUF and llama.cpp.

    .venv/bin/python bench/compare.py [--quick] [--threads N] [--parallel N] [--ctx N]
                                      [--tokens N] [--repeat N] [--model GGUF] [--against YAML]

(``make bench BENCH_ARGS="--quick"`` builds what is missing first.) Both servers get the same
threads, parallel slots and per-slot context, and are driven by the same streaming
``/v1/chat/completions`` client at temperature 0. While both are warm, every measurement is taken
on llama-server and then at once on llmd, so a shared machine's load shifts both alike. Then both
are stopped for the cold starts, and ``llama-batched-bench`` gives the no-server ceiling.

The conversation rows run their own servers, with 1 slot and with 4: four users take turns, one
request at a time, each resending their whole history (a system prompt of their own, some 800
tokens, and every earlier turn), 16 tokens per answer; llama-server runs with its default flags
(host-RAM prompt cache and similarity slot choice on).

Prints one markdown table (llmd, llama-server, llmd/llama-server, target) and writes it, with every
raw sample as JSON, under ``.cache/bench/``. ``--against 'metrics: false'`` measures llmd against
itself with those llmd.yaml lines instead of against llama-server: the cost of a feature.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ceiling
import httpx
import loadgen
import servers

ROOT = servers.ROOT
DEFAULT_GGUF = ROOT / ".cache/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
LEVELS = (1, 4, 8, 16)
PHASES = {"warm", "cold", "ceiling", "conversations"}
CONVERSATION_SLOTS = (1, 4)
CONVERSATION_USERS = 4
CONVERSATION_TURNS = 4
CONVERSATION_TOKENS = 16
CONVERSATION_CTX = 4096  # per slot: 4 turns of an ~850-token conversation and its answers


def physical_cores() -> int:
    from llmd.runner.handle import physical_cores as cores

    return cores()


def int_list(value: str) -> list[int]:
    try:
        numbers = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers like 1,4,8, got {value!r}") from None
    if not numbers or min(numbers) < 1:
        raise argparse.ArgumentTypeError(f"expected positive numbers, got {value!r}")
    return numbers


def reference_bin() -> Path:
    """The directory build-reference.sh prints (building there only if not cached yet)."""
    out = subprocess.run(
        ["bash", str(ROOT / "bench/build-reference.sh")],
        check=False,
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        sys.exit(f"bench: building the reference failed:\n{out.stderr[-2000:]}")
    return ROOT / out.stdout.strip().splitlines()[-1]


def machine() -> dict[str, Any]:
    model = platform.processor() or "unknown"
    try:
        lscpu = subprocess.run(["lscpu"], check=False, capture_output=True, text=True).stdout
        model = next(
            line.split(":", 1)[1].strip()
            for line in lscpu.splitlines()
            if line.startswith("Model name:")
        )
    except (OSError, StopIteration):
        pass
    mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "cpu": model,
        "cpus": os.cpu_count(),
        "physical_cores": physical_cores(),
        "ram_gib": round(mem_kib / 2**20, 1),
        "loadavg_start": os.getloadavg()[0],
    }


# --- measurements on one warm server --------------------------------------------------------


def run(server: Any, clients: int, per_client: int, tokens: int, first: int) -> loadgen.Run:
    return asyncio.run(
        loadgen.run_clients(server.url, server.model, clients, per_client, tokens, first)
    )


def warm_up(server: Any, parallel: int) -> None:
    """Page the weights in and touch every slot before anything is timed."""
    run(server, 1, 1, 8, first=900)
    run(server, parallel, 1, 8, first=900)


def sequential(server: Any, count: int, tokens: int, first: int) -> list[loadgen.Stream]:
    """``count`` requests one after another, each a prompt not seen before (a fresh prefill)."""
    return run(server, 1, count, tokens, first).streams


# --- the table ------------------------------------------------------------------------------


@dataclass
class Row:
    metric: str
    llmd: float | None
    ref: float | None
    unit: str
    fmt: str = "{:.1f}"
    target: str = ""
    check: Callable[[float | None, float | None], bool] | None = None

    @property
    def ratio(self) -> float | None:
        if self.llmd is None or not self.ref:
            return None
        return self.llmd / self.ref

    def cells(self) -> list[str]:
        def show(v: float | None) -> str:
            return "—" if v is None else self.fmt.format(v)

        verdict = ""
        if self.check is not None and self.llmd is not None:
            verdict = " ✓" if self.check(self.llmd, self.ratio) else " ✗"
        ratio = "—" if self.ratio is None else f"{self.ratio:.2f}×"
        return [
            f"{self.metric} ({self.unit})",
            show(self.llmd),
            show(self.ref),
            ratio,
            (self.target + verdict).strip(),
        ]


def render(rows: list[Row], ref_name: str = "llama-server") -> str:
    head = ["metric", "llmd", ref_name, "llmd / ref", "target"]
    table = [head] + [r.cells() for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(head))]
    lines = []
    for n, line in enumerate(table):
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(line, widths)) + " |")
        if n == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def ratio_at_least(x: float) -> Callable[[float | None, float | None], bool]:
    return lambda _, r: r is not None and r >= x


def ratio_at_most(x: float) -> Callable[[float | None, float | None], bool]:
    return lambda _, r: r is not None and r <= x


def value_below(x: float) -> Callable[[float | None, float | None], bool]:
    return lambda v, _: v is not None and v < x


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


# --- the run --------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", type=Path, default=Path(os.environ.get("MODEL_GGUF", DEFAULT_GGUF))
    )
    parser.add_argument("--threads", type=int, default=0, help="default: physical cores")
    parser.add_argument("--parallel", type=int, default=16, help="slots on both servers (16)")
    parser.add_argument("--ctx", type=int, default=1024, help="context tokens per slot (1024)")
    parser.add_argument(
        "--tokens", type=int, default=0, help="max_tokens per request (128; quick 64)"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=0,
        help="requests per client at each level, cold starts (2; quick 1)",
    )
    parser.add_argument(
        "--samples",
        type=int,
        default=0,
        help="sequential requests for TTFT and 1-token latency (20; quick 8)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="fewer, shorter requests (64 tokens, one request per client)"
    )
    parser.add_argument(
        "--levels",
        type=int_list,
        default=list(LEVELS),
        help="concurrent clients to measure, comma-separated (1,4,8,16); above --parallel skipped",
    )
    parser.add_argument(
        "--skip",
        type=lambda v: set(v.split(",")),
        default=set(),
        help="leave out phases, comma-separated: warm, cold, ceiling, conversations",
    )
    parser.add_argument(
        "--llmd-python",
        type=Path,
        default=servers.VENV_PYTHON,
        help="the Python that runs llmd (.venv's; /usr/lib/llmd/bin/python3 for the package's build)",
    )
    parser.add_argument(
        "--against",
        metavar="YAML",
        help="instead of llama-server, a second llmd whose llmd.yaml adds these lines, "
        "e.g. 'metrics: false' (no ceiling phase then)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / ".cache/bench")
    args = parser.parse_args()
    if not args.skip <= PHASES:
        parser.error(f"--skip: unknown phase(s) {', '.join(sorted(args.skip - PHASES))}")
    tokens = args.tokens or (64 if args.quick else 128)
    repeat = args.repeat or (1 if args.quick else 2)
    samples = args.samples or (8 if args.quick else 20)
    if min(tokens, repeat, samples, args.parallel, args.ctx) < 1 or args.threads < 0:
        parser.error("--tokens, --repeat, --samples, --parallel and --ctx must be positive")
    if not os.access(args.llmd_python, os.X_OK):
        parser.error(f"--llmd-python: no Python at {args.llmd_python}")
    if not args.model.is_file():
        parser.error(f"no model at {args.model} (make model)")
    gguf = args.model.resolve()
    threads = args.threads or physical_cores()
    levels = sorted({n for n in args.levels if n <= args.parallel})
    if not levels:
        parser.error("--levels: no level at or below --parallel")
    settings = servers.Settings(gguf, threads, args.parallel, args.ctx)
    ref_name = "llama-server" if args.against is None else f"llmd ({args.against})"
    if args.against is not None:
        args.skip.add("ceiling")  # llama-batched-bench is the reference build's
    binaries = reference_bin() if args.against is None else Path()
    info = machine()
    print(
        f"bench: {info['cpu']}, {info['physical_cores']} cores, {info['ram_gib']} GiB; "
        f"{gguf.name}; threads {threads}, parallel {args.parallel}, ctx {args.ctx}/slot, "
        f"max_tokens {tokens}, load average {info['loadavg_start']:.2f}",
        file=sys.stderr,
        flush=True,
    )
    raw: dict[str, Any] = {
        "machine": info,
        "settings": {
            "model": str(gguf),
            "threads": threads,
            "parallel": args.parallel,
            "ctx": args.ctx,
            "tokens": tokens,
            "repeat": repeat,
            "samples": samples,
        },
    }
    workdir = Path(tempfile.mkdtemp(prefix="llmd-bench-"))
    try:
        results, s_tg = measure(
            settings, binaries, workdir, levels, tokens, repeat, samples, args.skip, args.llmd_python,
            args.against,
        )
    except (servers.ServerFailed, RuntimeError, httpx.HTTPError, OSError) as exc:
        print(f"bench: {exc}\nbench: server logs kept in {workdir}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    shutil.rmtree(workdir, ignore_errors=True)
    raw["batched_bench_s_tg"] = s_tg
    raw["results"] = results
    info["loadavg_end"] = os.getloadavg()[0]

    table = render(rows(results, s_tg, levels, tokens), ref_name)
    print(header(raw) + table)
    save(args.out, header(raw) + table, raw)
    for key, name in (("llmd", "llmd"), ("ref", ref_name)):
        short = [
            t
            for n in levels
            for t in results[key].get(f"clients_{n}", {}).get("tokens", [])
            if t < tokens
        ]
        if short:
            # Rates stay per generated token, but shorter generations spend a larger share of
            # their time in prefill, so the two sides are less comparable.
            print(
                f"bench: {name}: {len(short)} generations stopped before max_tokens ({tokens})",
                file=sys.stderr,
            )
    return 0


def header(raw: dict[str, Any]) -> str:
    s, m = raw["settings"], raw["machine"]
    return (
        f"{m['cpu']}, {m['physical_cores']} cores, {m['ram_gib']} GiB RAM; load average "
        f"{m['loadavg_start']:.2f} → {m['loadavg_end']:.2f}\n"
        f"{Path(s['model']).name}; threads {s['threads']}, parallel {s['parallel']}, "
        f"ctx {s['ctx']}/slot, max_tokens {s['tokens']}, repeat {s['repeat']}, "
        f"samples {s['samples']}\n\n"
    )


def measure(
    settings: servers.Settings,
    binaries: Path,
    workdir: Path,
    levels: list[int],
    tokens: int,
    repeat: int,
    samples: int,
    skip: set[str],
    llmd_python: Path,
    against: str | None = None,
) -> tuple[dict[str, dict[str, Any]], dict[int, float]]:
    """Every measurement: both servers warm, then cold starts, then the batched-bench ceiling."""
    ref: Any = servers.LlamaServer(binaries / "llama-server", settings, workdir)
    if against is not None:
        ref = servers.Llmd(settings, workdir / "against", llmd_python, extra_config=against)
    llmd = servers.Llmd(settings, workdir, llmd_python)
    both = (("ref", ref), ("llmd", llmd))
    results: dict[str, dict[str, Any]] = {"ref": {}, "llmd": {}}

    calls = 0

    def each(label: str, measure: Callable[[Any], Any]) -> dict[str, Any]:
        """One measurement on both servers back to back, the order flipped every time so that
        a load that rises or falls during the run does not favour one side."""
        nonlocal calls
        calls += 1
        print(f"bench: {label}", file=sys.stderr, flush=True)
        order = both if calls % 2 else both[::-1]
        return {key: measure(server) for key, server in order}

    try:
        if "warm" in skip:
            raise _Skipped
        ref.start()
        llmd.start()
        time.sleep(1.0)  # let import-time allocations settle before reading RSS
        results["llmd"]["rss_idle_kib"] = servers.rss_kib(llmd.pid)
        each("warm-up", lambda s: warm_up(s, settings.parallel))
        results["llmd"]["rss_loaded_kib"] = servers.rss_kib(llmd.pid)

        for n in levels:
            out = each(
                f"{n} concurrent client(s)",
                lambda s, n=n: run(s, n, repeat, tokens, first=n * 100),
            )
            for key, r in out.items():
                results[key][f"clients_{n}"] = {
                    "aggregate": r.aggregate,
                    "wall": r.wall,
                    "tokens": [s.tokens for s in r.streams],
                    "ttft": r.ttfts(),
                    "decode": [s.decode_rate for s in r.streams],
                }
        out = each("time to first token", lambda s: sequential(s, samples, 4, first=2000))
        for key, streams in out.items():
            results[key]["ttft"] = [s.ttft for s in streams]
        out = each("1-token requests", lambda s: sequential(s, samples, 1, first=3000))
        for key, streams in out.items():
            results[key]["one_token"] = [s.done - s.sent for s in streams]
        results["llmd"]["rss_after_kib"] = servers.rss_kib(llmd.pid)
    except _Skipped:
        pass
    finally:
        ref.stop()
        llmd.stop()

    if "conversations" not in skip:
        for n, slots in enumerate(CONVERSATION_SLOTS):
            out = conversation_run(settings, binaries, workdir, llmd_python, slots, flip=n % 2 == 1)
            for key, value in out.items():
                results[key][f"conversations_{slots}"] = value

    results["ref"]["cold"], results["llmd"]["cold"] = [], []
    for _ in range(0 if "cold" in skip else repeat):
        print("bench: cold start", file=sys.stderr, flush=True)
        results["ref"]["cold"].append(
            cold_reference(binaries, settings, workdir)
            if against is None
            else cold_llmd(settings, workdir / "against", llmd_python, against)
        )
        results["llmd"]["cold"].append(cold_llmd(settings, workdir, llmd_python))

    if "ceiling" in skip:
        return results, {}
    print("bench: llama-batched-bench", file=sys.stderr, flush=True)
    s_tg = ceiling.run(
        binaries / "llama-batched-bench", settings.gguf, settings.threads, tokens, levels
    )
    return results, s_tg


class _Skipped(Exception):
    pass


def conversation_run(
    settings: servers.Settings, binaries: Path, workdir: Path, python: Path, slots: int, flip: bool
) -> dict[str, dict[str, Any]]:
    """The multi-user conversations on both servers with ``slots`` slots, one after the other."""
    # the histories grow past the fresh-prompt rows' per-slot context
    s = dataclasses.replace(settings, parallel=slots, ctx=max(settings.ctx, CONVERSATION_CTX))
    ref = servers.LlamaServer(binaries / "llama-server", s, workdir, defaults=True)
    llmd = servers.Llmd(s, workdir, python)
    order = [("ref", ref), ("llmd", llmd)]
    out: dict[str, dict[str, Any]] = {}
    try:
        ref.start()
        llmd.start()
        for key, server in order[::-1] if flip else order:
            print(f"bench: conversations, {slots} slot(s), {server.name}", file=sys.stderr, flush=True)
            run(server, 1, 1, 8, first=900)  # page the weights in
            turns, wall = asyncio.run(
                loadgen.conversations(
                    server.url, server.model, CONVERSATION_USERS, CONVERSATION_TURNS,
                    CONVERSATION_TOKENS,
                )
            )
            out[key] = {
                "wall": wall,
                "ttft_first": [t.stream.ttft for t in turns if t.turn == 0],
                "ttft_later": [t.stream.ttft for t in turns if t.turn > 0],
                "cached": [t.cached for t in turns],
                "tokens": [t.stream.tokens for t in turns],
            }
    finally:
        ref.stop()
        llmd.stop()
    return out


def cold_reference(binaries: Path, settings: servers.Settings, workdir: Path) -> float:
    """llama-server: process start, /health polled until 200, then one request's first token."""
    server = servers.LlamaServer(binaries / "llama-server", settings, workdir)
    try:
        started = server.start()
        stream = asyncio.run(first_token(server))
        return stream.chunk_times[0] - started
    finally:
        server.stop()


def cold_llmd(
    settings: servers.Settings, workdir: Path, python: Path, extra_config: str = ""
) -> float:
    """llmd behind a listening socket: from the connection (which starts llmd) to the first
    token, with the model load in between, as with llmd.socket."""
    server = servers.Llmd(settings, workdir, python, extra_config)
    try:
        server.socket_activated()
        stream = asyncio.run(first_token(server))
        return stream.ttft
    finally:
        server.stop()


async def first_token(server: Any) -> loadgen.Stream:
    async with httpx.AsyncClient(base_url=server.url, timeout=120) as client:
        stream = await loadgen.stream_chat(client, server.model, 4000, 8)
    if not stream.chunk_times:
        raise servers.ServerFailed(f"{server.name} streamed no token; see {server.log}")
    return stream


def rows(
    results: dict[str, Any], s_tg: dict[int, float], levels: list[int], tokens: int
) -> list[Row]:
    L, R = results["llmd"], results["ref"]

    def both(f: Callable[[dict[str, Any]], float | None]) -> tuple[float | None, float | None]:
        return f(L), f(R)

    def ms(values: list[float], q: int) -> float:
        return 1000 * loadgen.percentile(values, q)

    out = []
    if "ttft" in L and "ttft" in R:
        out += warm_rows(L, R, levels, tokens, s_tg, both, ms)
    for slots in CONVERSATION_SLOTS:
        key = f"conversations_{slots}"
        if key not in L or key not in R:
            continue
        name = f"conversations, {slots} slot{'s' if slots > 1 else ''}"
        out += [
            Row(f"{name}: TTFT turn 1 p50", *both(lambda d, k=key: ms(d[k]["ttft_first"], 50)), "ms"),
            Row(
                f"{name}: TTFT turns 2–{CONVERSATION_TURNS} p50",
                *both(lambda d, k=key: ms(d[k]["ttft_later"], 50)),
                "ms",
                target="≤0.8×",
                check=ratio_at_most(0.8),
            ),
            Row(
                f"{name}: wall time",
                *both(lambda d, k=key: d[k]["wall"]),
                "s",
                target="≤1.0×",
                check=ratio_at_most(1.0),
            ),
        ]
    if "cold" in L and L["cold"]:
        out.append(
            Row(
                "cold start to first token",
                *both(lambda d: median(d["cold"])),
                "s",
                fmt="{:.2f}",
                target="llmd < 1.5 s",
                check=value_below(1.5),
            )
        )
    return out


def warm_rows(
    L: dict[str, Any],
    R: dict[str, Any],
    levels: list[int],
    tokens: int,
    s_tg: dict[int, float],
    both: Callable[..., tuple[float | None, float | None]],
    ms: Callable[[list[float], int], float],
) -> list[Row]:
    out = []
    if 1 in levels:
        out.append(
            Row(
                "single-client decode",
                *both(lambda d: median([x for x in d["clients_1"]["decode"] if x is not None])),
                "tok/s",
                target="≥1.0×",
                check=ratio_at_least(1.0),
            )
        )
    for n in levels:
        key = f"clients_{n}"
        out.append(
            Row(
                f"aggregate, {n} client{'s' if n > 1 else ''}",
                *both(lambda d, key=key: d[key]["aggregate"]),
                "tok/s",
                target="≥1.0×" if n == 8 else "",
                check=ratio_at_least(1.0) if n == 8 else None,
            )
        )
    for n in levels:
        if n in s_tg:
            agg = L[f"clients_{n}"]["aggregate"]
            out.append(
                Row(
                    f"ceiling: llmd aggregate vs batched-bench S_TG, {n} seq",
                    agg,
                    s_tg[n],
                    "tok/s",
                    target="≥0.9×" if n == 8 else "",
                    check=ratio_at_least(0.9) if n == 8 else None,
                )
            )
    out += [
        Row(
            "TTFT p50, 1 client",
            *both(lambda d: ms(d["ttft"], 50)),
            "ms",
            target="≤1.2×",
            check=ratio_at_most(1.2),
        ),
        Row("TTFT p95, 1 client", *both(lambda d: ms(d["ttft"], 95)), "ms"),
    ]
    if 8 in levels:
        out.append(
            Row("TTFT p50, 8 clients", *both(lambda d: ms(d["clients_8"]["ttft"], 50)), "ms")
        )
    out += [
        Row("1-token request p50", *both(lambda d: ms(d["one_token"], 50)), "ms"),
        Row(
            "llmd main RSS, idle",
            L["rss_idle_kib"] / 1024,
            None,
            "MB",
            target="< 80 MB",
            check=value_below(80),
        ),
        Row("llmd main RSS, model loaded", L["rss_loaded_kib"] / 1024, None, "MB"),
        Row("llmd main RSS, after the run", L["rss_after_kib"] / 1024, None, "MB"),
        Row(
            "tokens per request, mean",
            *both(
                lambda d: statistics.mean(t for n in levels for t in d[f"clients_{n}"]["tokens"])
            ),
            f"of {tokens}",
        ),
    ]
    return out


def save(directory: Path, text: str, raw: dict[str, Any]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for name in (f"{stamp}.md", "latest.md"):
        (directory / name).write_text(text + "\n")
    for name in (f"{stamp}.json", "latest.json"):
        (directory / name).write_text(json.dumps(raw, indent=1) + "\n")
    print(f"bench: wrote {directory / stamp}.md and .json", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
