"""The end-to-end fixtures: the built .deb, a cached bookworm root, and a booted guest.

Needs root and systemd-nspawn (``make test`` installs mmdebstrap and systemd-container); without
them the e2e tests are skipped with the reason. Everything lives under ``.cache/e2e/``: the root
(``rootfs-bookworm``, rebuilt when the package's Depends change), mmdebstrap's and nspawn's logs,
and the guest's journal of the last run (``logs/journal.txt``).
``LLMD_E2E_DEB=/path/llmd_X_amd64.deb`` tests that package instead of running ``make deb``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e.nspawn import (
    BASE_PACKAGES,
    DEBS_IN_GUEST,
    MODEL_IN_GUEST,
    E2EError,
    Guest,
    depends_of,
    ensure_rootfs,
)

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / ".cache" / "e2e"
LOGS = CACHE / "logs"


@pytest.fixture(scope="session")
def e2e_host() -> None:
    """Skip, with the reason, where a booted container cannot be had at all."""
    if os.geteuid() != 0:
        pytest.skip("e2e: needs root (systemd-nspawn boots a container)")
    if shutil.which("systemd-nspawn") is None:
        pytest.skip("e2e: systemd-nspawn is missing (apt-get install systemd-container)")
    for tool in ("mmdebstrap", "nsenter", "dpkg-deb"):
        if shutil.which(tool) is None:
            pytest.fail(f"e2e: {tool} is missing: `make test` installs it (APT_PACKAGES)")


@pytest.fixture(scope="session")
def deb(e2e_host: None) -> Path:
    """The package under test: ``make -s deb``, then the newest ``dist/llmd_*_amd64.deb``."""
    given = os.environ.get("LLMD_E2E_DEB")
    if given:
        path = Path(given).resolve()
        if not path.is_file():
            pytest.fail(f"LLMD_E2E_DEB={given}: no such file")
        return path
    result = subprocess.run(
        ["make", "-s", "deb"], check=False, cwd=REPO, capture_output=True, text=True, stdin=subprocess.DEVNULL
    )
    if result.returncode != 0:
        pytest.fail(
            f"`make -s deb` failed with {result.returncode}:\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    built = sorted((REPO / "dist").glob("llmd_*_amd64.deb"), key=lambda p: p.stat().st_mtime)
    if not built:
        pytest.fail(f"`make -s deb` succeeded but {REPO / 'dist'} holds no llmd_*_amd64.deb")
    return built[-1]


@pytest.fixture(scope="session")
def rootfs(deb: Path) -> Path:
    """A Debian bookworm root with systemd and every dependency of the package, built once.

    The booted guest has no network (--private-network), so apt must find everything in the
    root: the package's own Depends are part of the include list, and of the cache key.
    """
    packages = [*BASE_PACKAGES, *depends_of(deb)]
    LOGS.mkdir(parents=True, exist_ok=True)
    try:
        return ensure_rootfs(CACHE, packages, LOGS / "mmdebstrap.log")
    except E2EError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="module")
def guest(rootfs: Path, deb: Path, gguf_path: Path) -> Iterator[Guest]:
    """A booted guest with the .deb under /mnt/debs and the model under /mnt/model (read-only).

    One per test module, powered off afterwards whatever happened; its journal is kept in
    .cache/e2e/logs/journal.txt.
    """
    machine = Guest(
        rootfs,
        {deb.parent: DEBS_IN_GUEST, gguf_path.parent: MODEL_IN_GUEST},
        LOGS,
    )
    try:
        try:
            state = machine.boot()
        except E2EError as exc:
            pytest.fail(f"the guest did not boot: {exc}")
        if state not in ("running", "degraded"):
            pytest.fail(f"the guest's boot ended {state!r}; see {LOGS / 'nspawn.log'}")
        yield machine
    finally:
        try:
            if machine.leader:
                machine.save_journal(LOGS / "journal.txt")
        finally:
            machine.shutdown()
