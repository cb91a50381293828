"""Start and stop the two servers under test with the same model, threads, slots and context.

``Llmd`` runs ``llmd serve`` from this checkout's virtualenv on a private store in a temporary
directory (the model imported there as ``smollm2:135m``); ``LlamaServer`` runs llama.cpp's own
``llama-server`` built from the same llama.cpp sources (``bench/build-reference.sh``).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
LLMD_MODEL = "smollm2:135m"


@dataclass(frozen=True)
class Settings:
    """What both servers are given, identically."""

    gguf: Path
    threads: int
    parallel: int
    ctx: int  # tokens per slot


class ServerFailed(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_kib(pid: int) -> int:
    """VmRSS of a process in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise ServerFailed(f"no VmRSS for pid {pid}")


def wait_http(url: str, process: subprocess.Popen[bytes], log: Path, deadline: float) -> None:
    """Poll ``url`` until it answers 200 (llama-server's /health is 503 while loading)."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if process.poll() is not None:
            raise ServerFailed(f"{process.args[0]} exited with {process.returncode}; see {log}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.02)
    raise ServerFailed(f"{url} not ready after {deadline:.0f}s; see {log}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group, then SIGKILL it if it lingers."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass


def _spawn(
    argv: list[str], log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        # A session of its own, so stop() reaches the runner processes llmd starts too.
        return subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )


class LlamaServer:
    name = "llama-server"

    def __init__(
        self, binary: Path, settings: Settings, workdir: Path, defaults: bool = False
    ) -> None:
        self.binary = binary
        self.settings = settings
        # defaults: only the model, address, threads, slots and context, as most people run it
        # (its host-RAM prompt cache and similarity slot choice on), for the conversation rows
        self.defaults = defaults
        self.log = workdir / "llama-server.log"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.model = settings.gguf.name
        self.process: subprocess.Popen[bytes] | None = None

    def argv(self) -> list[str]:
        s = self.settings
        if self.defaults:
            return [
                str(self.binary), "-m", str(s.gguf), "--host", "127.0.0.1", "--port",
                str(self.port), "-t", str(s.threads), "-tb", str(s.threads), "-np",
                str(s.parallel), "-c", str(s.ctx * s.parallel), "--no-webui",
            ]
        return [
            str(self.binary),
            "-m",
            str(s.gguf),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "-t",
            str(s.threads),
            "-tb",
            str(s.threads),
            "-np",
            str(s.parallel),
            # -c is the whole context, split evenly across the slots; one KV stream per slot, as
            # llmd's runner has (a unified cache is llama-server's default only with -np auto).
            "-c",
            str(s.ctx * s.parallel),
            "-no-kvu",
            "-b",
            "512",
            "-ub",
            "512",
            "--cont-batching",
            "--no-webui",
        ]

    def start(self) -> float:
        """Start and wait until /health is 200; returns the time of process start."""
        started = time.perf_counter()
        self.process = _spawn(self.argv(), self.log)
        wait_http(f"{self.url}/health", self.process, self.log, 120)
        return started

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)


class Llmd:
    name = "llmd"

    def __init__(
        self, settings: Settings, workdir: Path, python: Path = VENV_PYTHON, extra_config: str = ""
    ) -> None:
        self.settings = settings
        self.workdir = workdir
        self.extra_config = extra_config  # llmd.yaml lines of a variant under test
        # another interpreter measures another build, e.g. the package's /usr/lib/llmd/bin/python3
        self.command = [str(python), "-m", "llmd"]
        self.models = workdir / "models"
        self.config = workdir / "llmd.yaml"
        self.log = workdir / "llmd.log"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.model = LLMD_MODEL
        self.process: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        s = self.settings
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OLLAMA_", "LISTEN_"))}
        env.update(
            OLLAMA_MODELS=str(self.models),
            OLLAMA_NUM_PARALLEL=str(s.parallel),
            OLLAMA_CONTEXT_LENGTH=str(s.ctx),
            OLLAMA_HOST=f"127.0.0.1:{self.port}",
        )
        return env

    def prepare(self) -> None:
        """Write the config, and import the model into the private store (once per workdir)."""
        s = self.settings
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config.write_text(f"num_threads: {s.threads}\nkeep_alive: -1\n{self.extra_config}\n")
        if (self.models / "manifests").exists():
            return
        # A Modelfile of our own: conf/smollm2.Modelfile sets num_ctx and temperature, which would
        # override --ctx here and differ from what llama-server is given. No num_ctx either: the
        # model is created once per workdir, and the conversation rows' servers run with a larger
        # context than the fresh-prompt rows' (OLLAMA_CONTEXT_LENGTH, from env(), sets it for each).
        modelfile = self.workdir / "Modelfile"
        modelfile.write_text(f"FROM {s.gguf}\n")
        result = subprocess.run(
            [
                *self.command,
                "create",
                LLMD_MODEL,
                "-f",
                str(modelfile),
                "--config",
                str(self.config),
            ],
            check=False,
            env=self.env(),
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise ServerFailed(f"llmd create failed: {result.stderr.strip()}")

    def argv(self) -> list[str]:
        return [*self.command, "serve", "--config", str(self.config)]

    def start(self) -> float:
        self.prepare()
        started = time.perf_counter()
        self.process = _spawn(self.argv(), self.log, self.env())
        wait_http(f"{self.url}/api/version", self.process, self.log, 60)
        return started

    def socket_activated(self) -> subprocess.Popen[bytes]:
        """llmd behind ``systemd-socket-activate``: it listens now and starts llmd on the first
        connection, as llmd.socket does (the descriptor named ``http``)."""
        self.prepare()
        env = self.env()
        argv = ["systemd-socket-activate", "-l", f"127.0.0.1:{self.port}", "--fdname=http"]
        argv += [f"-E{k}={env[k]}" for k in sorted(env) if k.startswith("OLLAMA_") or k == "PATH"]
        self.process = _spawn(argv + self.argv(), self.log, env)
        end = time.monotonic() + 10
        while time.monotonic() < end:  # wait for the listener, without connecting to it
            if f":{self.port:04X} 00000000:0000 0A" in Path("/proc/net/tcp").read_text():
                return self.process
            time.sleep(0.01)
        raise ServerFailed(f"systemd-socket-activate did not listen; see {self.log}")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)
