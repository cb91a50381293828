"""A live ``llmd serve`` for tests: a real subprocess on a free loopback port with its own store.

    from harness import live_server, create_smollm2

    with live_server(tmp_path) as server:          # waits until HEAD / answers
        create_smollm2(server.url, gguf_path)      # smollm2:135m, through the HTTP API
        httpx.get(f"{server.url}/api/tags")

``live_server`` yields a LiveServer (url, port, models dir, env for clients such as llmctl,
the Popen) and stops the process on exit (SIGTERM, then SIGKILL). Extra environment variables
(OLLAMA_NUM_PARALLEL, ...) go in ``env``; ``args`` is appended after ``llmd serve``. The daemon's
stderr is kept in ``server.log`` and shown when it fails to start.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence

import httpx

START_TIMEOUT = 60.0  # seconds for the daemon to answer HEAD /; generous for a loaded CI box
STOP_TIMEOUT = 15.0
CLIENT_TIMEOUT = 300.0  # a deadline for hangs, never a performance assertion


_PR_SET_PDEATHSIG = 1


def tied_to_this_process() -> Callable[[], None]:
    """A ``preexec_fn`` that makes the child die with the test process that started it.

    ``PR_SET_PDEATHSIG``: the kernel sends SIGKILL when its parent goes, however it goes (a
    segfault in an in-process engine test, a SIGKILLed pytest), where a fixture's ``finally``
    never runs. The signal survives ``exec`` (not one across a credential change: a server
    started under ``setpriv`` passes ``--pdeathsig KILL`` there instead). Servers must be
    started from the thread that lives as long as them: the main thread, as fixtures are.
    """
    parent = os.getpid()

    def tie() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before the line above
            os._exit(1)

    return tie


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveServer:
    url: str
    port: int
    models: Path
    log: Path
    process: subprocess.Popen[bytes]
    env: dict[str, str] = field(default_factory=dict)  # OLLAMA_HOST etc., for client processes
    _http: httpx.Client | None = None

    @property
    def http(self) -> httpx.Client:
        """An httpx client on ``url`` with a timeout a busy test machine will not hit."""
        if self._http is None:
            self._http = httpx.Client(base_url=self.url, timeout=CLIENT_TIMEOUT)
        return self._http

    def stop(self) -> int:
        """SIGTERM, then SIGKILL if it does not exit; returns the exit status."""
        if self._http is not None:
            self._http.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL now: what a crash or the OOM killer does."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")


def terminate(process: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM, and SIGKILL if the process has not exited within ``timeout`` seconds."""
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def client_env(url_host: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OLLAMA_")}
    env["OLLAMA_HOST"] = url_host
    env.update(extra or {})
    return env


def wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(
                f"llmd exited with {process.returncode} before answering:\n{log.read_text()}"
            )
        try:
            if httpx.head(url + "/", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"llmd did not answer HEAD / within {timeout}s:\n{log.read_text()}")
        time.sleep(0.1)


@contextlib.contextmanager
def live_server(
    workdir: Path | None = None,
    *,
    models: Path | None = None,
    env: Mapping[str, str] | None = None,
    args: Sequence[str] = (),
    start_timeout: float = START_TIMEOUT,
) -> Iterator[LiveServer]:
    """Run ``llmd serve`` until the block ends. ``models`` defaults to a fresh dir in ``workdir``."""
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="llmd-")))
        workdir.mkdir(parents=True, exist_ok=True)
        models = models or workdir / "models"
        models.mkdir(parents=True, exist_ok=True)
        port = free_port()
        host = f"127.0.0.1:{port}"
        server_env = client_env(host, {"OLLAMA_MODELS": str(models), **(env or {})})
        log = workdir / f"llmd-{port}.log"
        if "--config" not in args:
            # an empty config file keeps a host's /etc/llmd/llmd.yaml out of the test
            config = workdir / f"llmd-{port}.yaml"
            config.write_text("")
            args = ["--config", str(config), *args]
        with log.open("wb") as log_file:
            process = subprocess.Popen(
                [sys.executable, "-m", "llmd", "serve", *args],
                env=server_env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                preexec_fn=tied_to_this_process(),
            )
        server = LiveServer(
            url=f"http://{host}", port=port, models=models, log=log, process=process,
            env=client_env(host),
        )
        try:
            wait_until_up(server.url, process, log, start_timeout)
            yield server
        finally:
            server.stop()


_DIGESTS: dict[tuple[Path, int, float], str] = {}


def file_digest(path: Path) -> str:
    """``sha256:<hex>`` of a file, remembered per (path, size, mtime): the GGUF is hashed once."""
    stat = path.stat()
    key = (path.resolve(), stat.st_size, stat.st_mtime)
    if key not in _DIGESTS:
        h = hashlib.sha256()
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        _DIGESTS[key] = f"sha256:{h.hexdigest()}"
    return _DIGESTS[key]


def upload_blob(url: str, path: Path) -> str:
    """HEAD, then POST the file to /api/blobs unless present; returns its digest."""
    digest = file_digest(path)
    if httpx.head(f"{url}/api/blobs/{digest}", timeout=CLIENT_TIMEOUT).status_code != 200:

        def chunks() -> Iterator[bytes]:
            with path.open("rb") as f:
                while chunk := f.read(1 << 20):
                    yield chunk

        response = httpx.post(f"{url}/api/blobs/{digest}", content=chunks(), timeout=CLIENT_TIMEOUT)
        response.raise_for_status()
    return digest


def create_smollm2(
    url: str, gguf_path: Path, name: str = "smollm2:135m", **fields: object
) -> dict[str, object]:
    """Create ``name`` from the real SmolLM2 GGUF through the HTTP API; returns the last status.

    Extra keyword arguments become /api/create fields (system=..., parameters={...}).
    """
    digest = upload_blob(url, gguf_path)
    body = {"model": name, "files": {gguf_path.name: digest}, "stream": False, **fields}
    response = httpx.post(f"{url}/api/create", json=body, timeout=CLIENT_TIMEOUT)
    if response.status_code != 200:
        raise RuntimeError(f"create {name} failed: {response.status_code} {response.text}")
    result: dict[str, object] = response.json()
    return result


def run_llmctl(
    *args: str, env: Mapping[str, str], cwd: Path | None = None, timeout: float = 300.0
) -> subprocess.CompletedProcess[str]:
    """Run ``llmctl ARGS`` as a real process; ``env`` is usually ``server.env``."""
    return subprocess.run(
        [sys.executable, "-m", "llmctl", *args],
        capture_output=True, text=True, env=dict(env), cwd=cwd, timeout=timeout,
    )
