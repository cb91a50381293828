"""llmctl's admin commands against llmd's Manager1 on a private system bus (see tests/bus)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest
from bus.buslib import SystemBus, User, import_smollm2, root_users, shared_tempdir, start_bus

MANAGER = Path(__file__).resolve().parents[1] / "bus" / "manager_process.py"


@pytest.fixture(scope="session")
def users() -> dict[str, User]:
    return root_users()


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    path = shared_tempdir("llmctl-bus-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def empty_bus(workdir: Path, users: dict[str, User]) -> Iterator[SystemBus]:
    """A system bus where llmd is neither running nor activatable."""
    bus = start_bus(workdir / "empty")
    yield bus
    bus.stop()


@pytest.fixture(scope="module")
def activatable_bus(workdir: Path, users: dict[str, User]) -> Iterator[SystemBus]:
    """A system bus with llmd's activation file, but no systemd to start it."""
    bus = start_bus(workdir / "activatable", activatable=True)
    yield bus
    bus.stop()


def _live(
    workdir: Path, users: dict[str, User], gguf_path: Path, env: dict[str, str] | None = None
) -> Iterator[SystemBus]:
    bus = start_bus(workdir / "live")
    home = workdir / "daemon"
    (home / "models").mkdir(parents=True)
    import_smollm2(home / "models", gguf_path, home, owner="ollama")
    process = subprocess.Popen(
        users["ollama"].setpriv(sys.executable, str(MANAGER), str(home / "models")),
        env={**bus.env(), **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        cwd=home,
    )
    assert process.stdout is not None
    assert process.stdout.readline().decode().strip() == "ready"
    yield bus
    process.terminate()
    process.wait(15)
    bus.stop()


@pytest.fixture(scope="module")
def live_bus(workdir: Path, users: dict[str, User], gguf_path: Path) -> Iterator[SystemBus]:
    """A system bus with Manager1 owned by a process running as ollama; its store has smollm2."""
    yield from _live(workdir, users, gguf_path)


@pytest.fixture(scope="module")
def crashing_bus(workdir: Path, users: dict[str, User], gguf_path: Path) -> Iterator[SystemBus]:
    """The same, but every runner dies of SIGSEGV while loading (the runner's test hook)."""
    yield from _live(workdir / "crashing", users, gguf_path, {"LLMD_RUNNER_FAULT": "load"})
