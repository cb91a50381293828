"""Servers the suite starts die with the test process, however it dies (a segfault included)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent.parent
DEADLINE = 30.0  # seconds before a wait is declared hung; never a timing assertion

# A test process that starts a server the way the fixtures do, says its pid, then crashes.
CRASHING_TEST = """
import os, signal, sys
sys.path.insert(0, {tests!r})
from pathlib import Path
{start}
print(pid, flush=True)
os.kill(os.getpid(), signal.SIGSEGV)
"""

LLMD = """
from harness import live_server
running = live_server(Path({work!r}))  # held: collecting it would stop the server
pid = running.__enter__().process.pid
"""

REGISTRY = """
from registry.registry_server import run_registry
running = run_registry(Path({work!r}))
pid = running.__enter__().process.pid
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.mark.parametrize("start", [LLMD, REGISTRY], ids=["llmd-serve", "docker-registry"])
def test_a_server_dies_with_a_test_process_that_segfaults(start: str, tmp_path: Path) -> None:
    script = CRASHING_TEST.format(tests=str(TESTS), start=start.format(work=str(tmp_path)))
    crashed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                             timeout=DEADLINE)
    assert crashed.returncode == -11, crashed.stderr
    pid = int(crashed.stdout.split()[0])
    deadline = time.monotonic() + DEADLINE
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    alive = _alive(pid)
    if alive:
        os.kill(pid, 9)
    assert not alive, "the server outlived the test process that started it"
