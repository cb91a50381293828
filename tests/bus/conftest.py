"""A private dbus-daemon configured as a *system* bus, real users, and llmd's Manager1 on it.

The bus denies owning names and method calls by default, as Debian's system.conf does, and
includes a copy of the real ``units/org.llmd.Manager1.conf``: so the policy file, sd-bus's
unprivileged-method check and llmd's own authorization are all exercised. Callers run as real,
different users through ``setpriv`` (a uid without a passwd entry gets disconnected).
"""

from __future__ import annotations


import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest
from harness import terminate
from bus.buslib import SystemBus, User, import_smollm2, root_users, shared_tempdir, start_bus

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
PYTHON = sys.executable


@pytest.fixture(scope="session")
def users() -> dict[str, User]:
    return root_users()


@pytest.fixture(scope="module")
def bus_dir() -> Iterator[Path]:
    path = shared_tempdir("llmd-bus-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def system_bus(bus_dir: Path, users: dict[str, User]) -> Iterator[SystemBus]:
    bus = start_bus(bus_dir / "bus")
    try:
        yield bus
    finally:
        bus.stop()


@pytest.fixture(scope="module")
def manager(
    system_bus: SystemBus, bus_dir: Path, users: dict[str, User], gguf_path: Path
) -> Iterator[str]:
    """Manager1 exported by a process running as ``ollama``; yields its log path.

    Its store holds smollm2:135m, imported from the real GGUF the way `llmd create` does.
    """
    home = bus_dir / "daemon"
    models = home / "models"
    models.mkdir(parents=True)
    import_smollm2(models, gguf_path, home, owner="ollama")
    log = bus_dir / "manager.log"
    env = system_bus.env()
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            users["ollama"].setpriv(PYTHON, str(HERE / "manager_process.py"), str(models)),
            env=env, stdout=subprocess.PIPE, stderr=log_file, cwd=home,
        )
    assert process.stdout is not None
    line = process.stdout.readline().decode().strip()
    if line != "ready":
        process.kill()
        process.wait()
        pytest.fail(f"the manager did not start ({line!r}):\n{log.read_text()}")
    try:
        yield str(log)
    finally:
        terminate(process)
