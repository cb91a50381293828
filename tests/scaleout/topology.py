"""Several llmd hosts behind HAProxy, fed from one registry, each in its own network namespace.

    with Topology(workdir, gguf_path) as topo:     # every namespace, link and process removed on exit
        topo.start_hosts()                          # llmd1..3 pull their pinned models at start
        topo.wait_in_pool(["llmd1", "llmd2", "llmd3"])
        ollama.Client(host=topo.url)                 # HAProxy, on loopback in the test's namespace

Layout (198.18.0.0/24, the benchmarking range, exists only inside the namespaces):

    <p>-lb   br0 198.18.0.1 -- veth -- <p>-reg  198.18.0.2:5000  docker-registry
                            -- veth -- <p>-h1   198.18.0.11:11434 llmd1
                            -- veth -- <p>-h2   198.18.0.12:11434 llmd2
                            -- veth -- <p>-h3   198.18.0.13:11434 llmd3

HAProxy runs in the test's own namespace with its frontend on 127.0.0.1 and reaches the hosts
through ``<p>-lb`` (its ``namespace`` server keyword), so nothing outside loopback and these
namespaces sees a packet. The configuration is conf/haproxy/llmd.cfg with only its addresses,
log and stats socket replaced.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import httpx
import pytest
from harness import terminate
from llmd.keys import KeyStore
from llmd.store import ModelName, Store, create_from_modelfile
from llmd.store.transfer import Target, Transfers
from registry.registry_server import free_port, run_registry

ROOT = Path(__file__).resolve().parents[2]
HAPROXY_CFG = ROOT / "conf" / "haproxy" / "llmd.cfg"
SUBNET = "198.18.0"
REGISTRY = f"{SUBNET}.2:5000"
MODEL_A = f"{REGISTRY}/library/smollm2:135m"
# The same weights with another system prompt, under several names: the test takes the first
# whose hash lands on another host than MODEL_A's.
MODELS_B = tuple(f"{REGISTRY}/library/smollm2-b:c{i}" for i in range(1, 5))
HOSTS = ("llmd1", "llmd2", "llmd3")
START_TIMEOUT = 120.0  # a hang guard for pulls and preloads on a busy 2-core machine
STOP_TIMEOUT = 60.0    # SIGTERM drains up to drain_timeout (30s) before the daemon exits


def missing_tools() -> str | None:
    if os.geteuid() != 0:
        return "needs root (ip netns)"
    for tool in ("ip", "haproxy", "docker-registry"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (make test installs haproxy, iproute2, docker-registry)"
    return None


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=30)


@dataclass
class Host:
    name: str
    namespace: str
    address: str
    workdir: Path
    config: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def log(self) -> Path:
        return self.workdir / "llmd.log"

    def start(self) -> None:
        """``llmd serve`` in the host's namespace, as systemd's ExecStart would run it."""
        assert self.process is None or self.process.poll() is not None
        env = {k: v for k, v in os.environ.items() if not k.startswith("OLLAMA_")}
        env.update({
            "OLLAMA_HOST": f"{self.address}:11434",
            "OLLAMA_MODELS": str(self.workdir / "models"),
            "OLLAMA_CONTEXT_LENGTH": "512",
            "OLLAMA_NUM_PARALLEL": "2",
        })
        self.starts += 1
        with self.log.open("ab") as log:
            log.write(f"--- start {self.starts}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                ["ip", "netns", "exec", self.namespace,  # ip execs: the pid is llmd's
                 sys.executable, "-m", "llmd", "serve", "--config", str(self.config)],
                env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )

    def terminate(self) -> int:
        """SIGTERM, as ``systemctl stop`` sends it; waits for the drain and the exit."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(STOP_TIMEOUT)

    def kill(self) -> None:
        """SIGKILL now: a crash, the OOM killer."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(STOP_TIMEOUT)

    def stop(self) -> None:
        if self.process is not None:
            terminate(self.process, STOP_TIMEOUT)

    def text(self) -> str:
        return self.log.read_text(errors="replace")


@dataclass
class Topology:
    workdir: Path
    gguf_path: Path
    prefix: str = field(default_factory=lambda: f"lt{os.getpid() % 100000}")
    hosts: dict[str, Host] = field(default_factory=dict)
    pins: dict[str, str] = field(default_factory=dict)  # model name -> manifest digest
    url: str = ""
    key: str = ""  # the team's API key: hosts are reached from HAProxy's address, not loopback
    stats_socket: Path = Path()
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    # --- building and tearing down ---------------------------------------------------------------

    def __enter__(self) -> Topology:
        try:
            self._network()
            self._registry()
            # One key file for every host, as a team provisions it; clients send the key through
            # HAProxy, which passes Authorization on (its health checks of /ready need none).
            self.key = KeyStore(self.workdir / "api-keys.json").add("team")[1]
            for i, name in enumerate(HOSTS, start=1):
                workdir = self.workdir / name
                (workdir / "models").mkdir(parents=True)
                host = Host(name, f"{self.prefix}-h{i}", f"{SUBNET}.{10 + i}", workdir,
                            workdir / "llmd.yaml")
                self.write_config(host)
                self.hosts[name] = host
                self._stack.callback(host.stop)
            self._haproxy()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def _namespace(self, name: str) -> str:
        ns = f"{self.prefix}-{name}"
        sh("ip", "netns", "add", ns)
        self._stack.callback(subprocess.run, ["ip", "netns", "del", ns], capture_output=True)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        return ns

    def _network(self) -> None:
        lb = self._namespace("lb")
        sh("ip", "-n", lb, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", lb, "addr", "add", f"{SUBNET}.1/24", "dev", "br0")
        sh("ip", "-n", lb, "link", "set", "br0", "up")
        for name, last in (("reg", 2), ("h1", 11), ("h2", 12), ("h3", 13)):
            ns = self._namespace(name)
            # created inside lb, so removing the namespaces removes every link with them
            sh("ip", "-n", lb, "link", "add", f"to-{name}", "type", "veth",
               "peer", "name", "eth0", "netns", ns)
            sh("ip", "-n", lb, "link", "set", f"to-{name}", "master", "br0", "up")
            sh("ip", "-n", ns, "addr", "add", f"{SUBNET}.{last}/24", "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")

    def _registry(self) -> None:
        """Push the models to a registry on loopback, then serve its storage in <p>-reg."""
        storage = self.workdir / "registry"
        source = Store(self.workdir / "source" / "models")
        with run_registry(storage) as loopback:
            asyncio.run(self._publish(source, loopback.host))
        config = storage / "netns.yml"
        config.write_text(
            "version: 0.1\n"
            "log:\n  level: error\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {storage / 'storage'}\n"
            f"http:\n  addr: {REGISTRY}\n  secret: llmd-test-secret\n"
        )
        log = (storage / "netns.log").open("wb")
        self._stack.callback(log.close)
        process = subprocess.Popen(
            ["ip", "netns", "exec", f"{self.prefix}-reg", shutil.which("docker-registry") or "",
             "serve", str(config)], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self._stack.callback(terminate, process, 10)

    async def _publish(self, source: Store, host: str) -> None:
        for names, system in (((MODEL_A,), "You are host A's model."),
                              (MODELS_B, "You are the second model.")):
            modelfile = self.workdir / "source" / "Modelfile"
            modelfile.write_text(f"FROM {self.gguf_path}\nSYSTEM {system}\n")
            local = ModelName.parse(names[0].replace(REGISTRY, host))
            await create_from_modelfile(source, local.short, modelfile, lambda _s: None)
            for name in names:
                there = ModelName.parse(name.replace(REGISTRY, host))
                if there != local:
                    await source.copy(local, there)
                async for _ in Transfers(source).push(Target(there, there.tag, insecure=True)):
                    pass
                self.pins[name] = "sha256:" + (await source.get(there)).digest

    def _haproxy(self) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.stats_socket = self.workdir / "haproxy.sock"
        text = HAPROXY_CFG.read_text()
        text = re.sub(r"^    log /dev/log.*$", "    log stderr format raw local0", text, flags=re.M)
        text = re.sub(r"^    stats socket \S+", f"    stats socket {self.stats_socket}", text,
                      flags=re.M)
        text = re.sub(r"^    bind :11434$", f"    bind 127.0.0.1:{port}", text, flags=re.M)
        for i, name in enumerate(HOSTS, start=1):
            text = text.replace(f"{name} 192.0.2.1{i}:11434",
                                f"{name} {SUBNET}.{10 + i}:11434 namespace {self.prefix}-lb")
        assert text.count(f"namespace {self.prefix}-lb") == 2 * len(HOSTS), "llmd.cfg changed shape"
        config = self.workdir / "haproxy.cfg"
        config.write_text(text)
        sh("haproxy", "-c", "-q", "-f", str(config))
        log = (self.workdir / "haproxy.log").open("wb")
        self._stack.callback(log.close)
        process = subprocess.Popen(["haproxy", "-db", "-f", str(config)], stdout=log,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self._stack.callback(terminate, process, 10)
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, (self.workdir / "haproxy.log").read_text()
            try:
                self.states()
                return
            except OSError:  # not bound, or bound and not yet listening
                assert time.monotonic() < deadline, "haproxy did not start"
                time.sleep(0.05)

    # --- hosts -----------------------------------------------------------------------------------

    def write_config(self, host: Host, pin_a: str | None = None) -> None:
        """Every host declares MODEL_A (pinned, preloaded) and the MODELS_B names (pinned)."""
        lines = ["num_threads: 1", f"keys_file: {self.workdir / 'api-keys.json'}", "models:"]
        lines += [f"  - name: {MODEL_A}@{pin_a or self.pins[MODEL_A]}",
                  "    preload: true", "    insecure: true"]
        for name in MODELS_B:
            lines += [f"  - name: {name}@{self.pins[name]}", "    insecure: true"]
        host.config.write_text("\n".join(lines) + "\n")

    def start_hosts(self) -> None:
        for host in self.hosts.values():
            host.start()

    # --- HAProxy's view --------------------------------------------------------------------------

    def states(self) -> dict[str, str]:
        """Each host's check state in the hashing backend: "UP", "DOWN", "UP 1/2", ..."""
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(10)
            sock.connect(str(self.stats_socket))
            sock.sendall(b"show stat\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        rows = csv.DictReader(io.StringIO(data.decode().lstrip("# ")))
        return {r["svname"]: r["status"] for r in rows if r["pxname"] == "llmd_by_model"
                and r["svname"] in HOSTS}

    def wait_states(self, want: dict[str, str], timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while True:
            states = self.states()
            if all(states.get(h) == s for h, s in want.items()):
                return
            for name, host in self.hosts.items():
                if host.process is not None and host.process.poll() is not None \
                        and want.get(name) == "UP":
                    raise AssertionError(f"{name} exited:\n{host.text()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"HAProxy sees {states}, want {want}")
            time.sleep(0.2)

    def wait_in_pool(self, names: Iterator[str] | list[str] | tuple[str, ...]) -> None:
        self.wait_states({name: "UP" for name in names})


def served_by(response: httpx.Response) -> str:
    return response.headers.get("x-llmd-host", "")


@contextlib.contextmanager
def topology(workdir: Path, gguf_path: Path) -> Iterator[Topology]:
    reason = missing_tools()
    if reason:
        pytest.skip(reason)
    with Topology(workdir, gguf_path) as topo:
        yield topo
