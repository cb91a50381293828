"""A Debian bookworm root built with mmdebstrap, booted under a real systemd with systemd-nspawn.

Imported as ``e2e.nspawn`` (``tests/`` is on sys.path) by tests/e2e/conftest.py.

The host has no systemd as PID 1, no host D-Bus and no machined, and its cgroups are the v1 hybrid
layout, so the recipe is the one in /work/shared/reference/e2e-container.md:
- ``--register=no --keep-unit``: otherwise nspawn dies with "Failed to open system bus";
- nspawn runs from a private cgroup of its own, because without a host systemd ``--keep-unit``
  puts the guest in ``<nspawn's cgroup>/payload``, which from the root cgroup is shared by every
  nspawn on the host; that cgroup is also the last-resort way to kill an orphaned guest;
- machinectl and ``systemd-run -M`` cannot reach the guest, so commands go in with
  ``nsenter -t <guest PID 1> -a``, after ``/run/systemd/private`` exists;
- ``--volatile=overlay`` keeps the cached root pristine (a tmpfs takes every write), so no journal
  or state leaks from one run into the next.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

SUITE = "bookworm"
# What the checks themselves run in the guest, on top of the package's Depends: a booted systemd
# with a system bus, curl for the API, passwd for useradd/usermod (not in minbase), procps for kill.
BASE_PACKAGES = ("systemd", "systemd-sysv", "dbus", "curl", "ca-certificates", "passwd", "procps")
GUEST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEBS_IN_GUEST = "/mnt/debs"  # the .deb's directory, bound read-only
MODEL_IN_GUEST = "/mnt/model"  # the GGUF's directory, bound read-only


def _cgroup_roots() -> tuple[Path, ...]:
    """The hierarchies nspawn's private cgroup is made in; the cgroup2 one (with cgroup.kill) last.

    A hybrid host (this one: no systemd, v1 controllers) has a named ``systemd`` v1 tree and
    cgroup2 at ``unified``; a pure cgroup2 host has only ``/sys/fs/cgroup``.
    """
    base = Path("/sys/fs/cgroup")
    if (base / "cgroup.controllers").exists():
        return (base,)
    return tuple(p for p in (base / "systemd", base / "unified") if p.is_dir())


CGROUP_ROOTS = _cgroup_roots()


class E2EError(Exception):
    """The harness could not set up or reach the guest; the message says what it ran and saw."""


def mirror() -> str:
    """The host's Debian mirror: the first non-security ``URIs:`` line of its deb822 sources."""
    sources = sorted(Path("/etc/apt/sources.list.d").glob("*.sources"))
    for path in sources:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith("URIs:"):
                for uri in line.split()[1:]:
                    if "security" not in uri:
                        return uri
    legacy = Path("/etc/apt/sources.list")
    if legacy.is_file():
        for line in legacy.read_text(encoding="utf-8").splitlines():
            fields = line.split()
            if len(fields) > 2 and fields[0] == "deb" and "security" not in fields[1]:
                return fields[1]
    raise E2EError("no Debian mirror in /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list")


def depends_of(deb: Path) -> list[str]:
    """The package names a .deb depends on, first alternative of each, versions dropped.

    mmdebstrap's ``--include`` takes names, not relations; the first alternative is what apt
    itself would pick when nothing else is installed.
    """
    field = subprocess.run(
        ["dpkg-deb", "--field", str(deb), "Depends", "Pre-Depends"],
        capture_output=True, text=True, check=True,
    ).stdout
    names: list[str] = []
    for line in field.splitlines():
        _, _, value = line.partition(":")
        for relation in value.split(","):
            first = relation.split("|")[0].strip()
            name = first.split("(")[0].split("[")[0].split(":")[0].strip()
            if name and name not in names:
                names.append(name)
    return names


def ensure_rootfs(cache: Path, packages: list[str], log: Path) -> Path:
    """The cached bookworm root holding ``packages``; rebuilt when that list changes.

    The list is the cache key: it is stored in the root, and a root built for another list is
    replaced. The build goes to a temporary directory renamed into place, so an interrupted
    build never looks like a finished one.
    """
    include = ",".join(sorted(set(packages)))
    key = hashlib.sha256(f"{SUITE}\n{include}".encode()).hexdigest()
    root = cache / f"rootfs-{SUITE}"
    stamp = root / ".e2e-key"
    if stamp.is_file() and stamp.read_text(encoding="utf-8").strip() == key:
        return root
    cache.mkdir(parents=True, exist_ok=True)
    for stale in cache.glob(f"rootfs-{SUITE}.*"):  # leftovers of interrupted builds
        shutil.rmtree(stale, ignore_errors=True)
    building = cache / f"rootfs-{SUITE}.building-{os.getpid()}"
    command = [
        "mmdebstrap", "--variant=minbase", f"--include={include}",
        SUITE, str(building), mirror(),
    ]
    with log.open("w") as out:
        result = subprocess.run(command, check=False, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        shutil.rmtree(building, ignore_errors=True)
        raise E2EError(f"{' '.join(command)} failed ({result.returncode}); log: {log}\n{tail(log)}")
    (building / "etc" / "hostname").write_text("llmd-e2e\n", encoding="utf-8")
    (building / ".e2e-key").write_text(key + "\n", encoding="utf-8")
    if root.exists():
        old = cache / f"rootfs-{SUITE}.old-{os.getpid()}"
        root.rename(old)
        shutil.rmtree(old, ignore_errors=True)
    building.rename(root)
    return root


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="utf-8")
    except OSError:
        return False
    return "\nState:\tZ" not in status


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text(encoding="utf-8")
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text(encoding="utf-8").strip()
    except OSError:
        return ""


class Guest:
    """One booted guest: ``boot()``, then ``run(...)`` commands in it, then ``shutdown()``."""

    def __init__(self, root: Path, binds: dict[Path, str], logs: Path) -> None:
        self.root = root
        self.binds = binds  # host dir -> guest mount point, all read-only
        self.logs = logs
        self.name = f"llmd-e2e-{uuid.uuid4().hex[:8]}"
        self.cgroup = f"llmd-e2e-{os.getpid()}-{self.name[-8:]}"
        self.nspawn: subprocess.Popen[bytes] | None = None
        self.leader = 0  # the guest's PID 1, as the host sees it

    # --- life cycle -------------------------------------------------------------------------------

    def boot(self, timeout: float = 60) -> str:
        """Start nspawn in the background and wait until systemd says the boot is over."""
        self.logs.mkdir(parents=True, exist_ok=True)
        procs = " ".join(
            f"{base}/{self.cgroup}/cgroup.procs" for base in CGROUP_ROOTS
        )
        for base in CGROUP_ROOTS:
            (base / self.cgroup).mkdir(exist_ok=True)
        nspawn = [
            "systemd-nspawn", "-q", "-D", str(self.root), "--volatile=overlay",
            f"--machine={self.name}", "--register=no", "--keep-unit", "--private-network",
            *(f"--bind-ro={host}:{guest}" for host, guest in self.binds.items()),
            "--console=pipe", "-b",
        ]
        # The shell moves itself into the private cgroup, then becomes nspawn.
        script = f'for f in {procs}; do echo $$ > "$f"; done; exec "$@"'
        env = dict(os.environ, SYSTEMD_NSPAWN_UNIFIED_HIERARCHY="1")
        with (self.logs / "nspawn.log").open("wb") as out:
            self.nspawn = subprocess.Popen(
                ["/bin/sh", "-c", script, "sh", *nspawn],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
            )
        deadline = time.monotonic() + timeout
        while not self.leader:
            if self.nspawn.poll() is not None:
                raise E2EError(
                    f"systemd-nspawn exited with {self.nspawn.returncode} before the guest booted:\n"
                    + tail(self.logs / "nspawn.log")
                )
            if time.monotonic() > deadline:
                raise E2EError(f"no guest systemd under nspawn pid {self.nspawn.pid} after {timeout}s")
            self.leader = next(
                (p for p in _children(self.nspawn.pid) if _comm(p) == "systemd"), 0
            )
            time.sleep(0.05)
        private = Path(f"/proc/{self.leader}/root/run/systemd/private")
        # systemctl fails with "Failed to connect to bus" until PID 1 has bound this socket
        while not private.exists():
            if time.monotonic() > deadline or not _alive(self.leader):
                raise E2EError(f"the guest's systemd never opened {private}")
            time.sleep(0.05)
        state = self.run(
            "systemctl", "is-system-running", "--wait",
            timeout=max(1.0, deadline - time.monotonic()), check=False,
        )
        return state.stdout.strip()

    def shutdown(self) -> None:
        """Power the guest off; SIGTERM nspawn, then kill the whole cgroup if it will not go."""
        try:
            if self.nspawn is not None and self.nspawn.poll() is None:
                if self.leader and _alive(self.leader):
                    self.run("systemctl", "poweroff", "--no-block", timeout=10, check=False)
                if not self._wait_nspawn(30):
                    # nspawn turns SIGTERM into a clean halt of the guest
                    self.nspawn.send_signal(signal.SIGTERM)
                    if not self._wait_nspawn(15):
                        self.nspawn.kill()
                        self._wait_nspawn(5)
        finally:
            # SIGKILL of nspawn orphans the guest: its systemd keeps running under the host's init.
            if self.leader and _alive(self.leader):
                self._kill_cgroup()
            self._remove_cgroup()

    def _wait_nspawn(self, seconds: float) -> bool:
        assert self.nspawn is not None
        try:
            self.nspawn.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            return False
        return True

    def _kill_cgroup(self) -> None:
        if not CGROUP_ROOTS:
            return
        kill = CGROUP_ROOTS[-1] / self.cgroup / "cgroup.kill"
        if kill.exists():
            kill.write_text("1")
        deadline = time.monotonic() + 10
        while _alive(self.leader) and time.monotonic() < deadline:
            time.sleep(0.1)

    def _remove_cgroup(self) -> None:
        for base in CGROUP_ROOTS:
            top = base / self.cgroup
            if not top.is_dir():
                continue
            for directory in sorted(top.rglob("*"), key=lambda p: len(p.parts), reverse=True):
                if directory.is_dir():
                    try:
                        directory.rmdir()
                    except OSError:
                        pass
            try:
                top.rmdir()
            except OSError:
                pass

    # --- commands ---------------------------------------------------------------------------------

    def command(self, *argv: str) -> list[str]:
        """``argv`` entered into every namespace of the guest, with a clean environment."""
        return [
            "nsenter", "-t", str(self.leader), "-a",
            "env", "-i", f"PATH={GUEST_PATH}", "LANG=C.UTF-8", "TERM=dumb", "HOME=/root",
            "SYSTEMD_PAGER=", "SYSTEMD_COLORS=0", *argv,
        ]

    def run(
        self, *argv: str, timeout: float = 60, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` in the guest; stdout and stderr are kept apart, both as text."""
        try:
            result = subprocess.run(
                self.command(*argv), check=False, capture_output=True, text=True, timeout=timeout,
                input=input, stdin=None if input is not None else subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as exc:
            raise E2EError(f"guest: {' '.join(argv)} did not finish within {timeout}s") from exc
        if check and result.returncode != 0:
            raise E2EError(describe(argv, result))
        return result

    def sh(self, script: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
        return self.run("sh", "-c", script, **kwargs)  # type: ignore[arg-type]

    def save_journal(self, path: Path) -> None:
        """The guest's whole journal of this boot, for reading after a failure."""
        result = self.run(
            "journalctl", "-b", "--no-pager", "-o", "short-monotonic", timeout=60, check=False
        )
        path.write_text(result.stdout + result.stderr, encoding="utf-8")


def describe(argv: tuple[str, ...] | list[str], result: subprocess.CompletedProcess[str]) -> str:
    """A command's exit status and output, as an assertion message."""
    return (
        f"$ {' '.join(argv)}\n-> exit {result.returncode}\n"
        f"--- stdout ---\n{result.stdout.rstrip()}\n--- stderr ---\n{result.stderr.rstrip()}"
    )
