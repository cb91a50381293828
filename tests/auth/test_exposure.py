"""Secure by default off loopback, tested on a real non-loopback address.

Each test gets a network namespace of its own (``ip netns add``, removed afterwards) whose ``lo``
also carries 198.51.100.7 (TEST-NET-2): an address that is not loopback, reachable only inside the
namespace, so nothing is ever exposed to the machine's real network. llmd and curl run inside it
with ``ip netns exec``; a request curl sends to 198.51.100.7 comes *from* 198.51.100.7, a peer the
``loopback`` policy must not trust. No test override in llmd is involved.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ADDRESS = "198.51.100.7"
PORT = 11434  # the namespace has its own ports: Ollama's own cannot be taken there
START_TIMEOUT = 60.0

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("curl") is None,
    reason="network namespaces need root, iproute2 and curl",
)


@pytest.fixture
def netns() -> Iterator[str]:
    name = f"llmdtest-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        for command in (["ip", "link", "set", "lo", "up"],
                        ["ip", "addr", "add", f"{ADDRESS}/32", "dev", "lo"]):
            subprocess.run(["ip", "netns", "exec", name, *command], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=True)


def llmd(netns: str, work: Path, config: str, host: str, *args: str) -> list[str]:
    (work / "llmd.yaml").write_text(config)
    return ["ip", "netns", "exec", netns, "env", f"OLLAMA_HOST={host}",
            f"OLLAMA_MODELS={work / 'models'}", sys.executable, "-m", "llmd", *args,
            "--config", str(work / "llmd.yaml")]


def curl(netns: str, url: str, *headers: str) -> int:
    args = [a for h in headers for a in ("-H", h)]
    out = subprocess.run(
        ["ip", "netns", "exec", netns, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
         "--max-time", "10", *args, url],
        capture_output=True, text=True,
    )
    return int(out.stdout or 0)


def start(command: list[str], log: Path, probe: tuple[str, str]) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + START_TIMEOUT
    while curl(*probe) != 200:
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"llmd did not start:\n{log.read_text()}")
        time.sleep(0.2)
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.mark.parametrize("host", [f"{ADDRESS}:{PORT}", f"0.0.0.0:{PORT}"])
def test_auth_none_on_a_network_address_refuses_to_start_in_one_line(
    netns: str, tmp_path: Path, host: str
) -> None:
    out = subprocess.run(llmd(netns, tmp_path, "auth: none\n", host, "serve"),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    errors = [line for line in out.stderr.splitlines() if line.startswith("llmd:")]
    assert len(errors) == 1, out.stderr
    assert errors[0].startswith(
        f"llmd: {tmp_path / 'llmd.yaml'}: auth: none would let anyone who reaches "
        f"{host} delete, pull and push models; create a key (`llmctl key add NAME`"
    )
    assert "allow_unauthenticated_network: true" in errors[0]
    assert curl(netns, f"http://{ADDRESS}:{PORT}/") == 0  # nothing answers


def test_allow_unauthenticated_network_is_the_explicit_way_to_serve_without_keys(
    netns: str, tmp_path: Path
) -> None:
    config = "auth: none\nallow_unauthenticated_network: true\n"
    url = f"http://{ADDRESS}:{PORT}"
    process = start(llmd(netns, tmp_path, config, f"{ADDRESS}:{PORT}", "serve"),
                    tmp_path / "llmd.log", (netns, f"{url}/"))
    try:
        assert curl(netns, f"{url}/api/tags") == 200
    finally:
        stop(process)


def test_under_loopback_a_network_peer_needs_a_key_and_a_reload_cannot_drop_it(
    netns: str, tmp_path: Path
) -> None:
    made = subprocess.run(llmd(netns, tmp_path, "", "", "key", "add", "ide"),
                          capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    secret = made.stdout.strip()
    command = llmd(netns, tmp_path, "auth: loopback\n", f"0.0.0.0:{PORT}", "serve")
    process = start(command, tmp_path / "llmd.log", (netns, f"http://127.0.0.1:{PORT}/api/tags"))
    remote = f"http://{ADDRESS}:{PORT}/api/tags"
    try:
        assert curl(netns, f"http://127.0.0.1:{PORT}/api/tags") == 200  # a loopback peer
        assert curl(netns, remote) == 401  # the same machine, from a network address
        assert curl(netns, remote, f"Authorization: Bearer {secret}") == 200
        (tmp_path / "llmd.yaml").write_text("auth: none\n")
        process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while "configuration not reloaded" not in (tmp_path / "llmd.log").read_text():
            assert time.monotonic() < deadline, (tmp_path / "llmd.log").read_text()
            time.sleep(0.1)
        assert curl(netns, remote) == 401
    finally:
        stop(process)
