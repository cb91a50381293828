"""Helpers for the D-Bus tests: system users, a private system-type dbus-daemon, setpriv.

Imported as ``bus.buslib`` (``tests/`` is on sys.path) by tests/bus and tests/ctl_admin.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
POLICY = REPO / "units" / "org.llmd.Manager1.conf"
ACTIVATION = REPO / "units" / "org.llmd.Manager1.service"

MEMBER = "llmdtest-member"
PLAIN = "llmdtest-plain"


@dataclass(frozen=True)
class User:
    name: str
    uid: int
    gid: int

    def setpriv(self, *command: str) -> list[str]:
        """``command`` run as this user with the groups /etc/group gives them."""
        if self.uid == 0:
            return list(command)
        return [
            # dies with the test process, like every server the suite starts (harness.py)
            "setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--init-groups",
            "--pdeathsig=KILL", *command,
        ]


def _user(name: str) -> User:
    entry = pwd.getpwnam(name)
    return User(name, entry.pw_uid, entry.pw_gid)


def ensure_users() -> dict[str, User]:
    """``ollama`` (owns the name), a member of group ollama, and a plain user; created if missing."""
    nologin = "/usr/sbin/nologin"
    try:
        grp.getgrnam("ollama")
    except KeyError:
        subprocess.run(["groupadd", "--system", "ollama"], check=True)
    for name, extra in (
        ("ollama", ["-g", "ollama"]),
        (MEMBER, ["-U", "-G", "ollama"]),
        (PLAIN, ["-U"]),
    ):
        try:
            pwd.getpwnam(name)
        except KeyError:
            subprocess.run(
                ["useradd", "--system", "--no-create-home", "-s", nologin, *extra, name],
                check=True,
            )
    if MEMBER not in grp.getgrnam("ollama").gr_mem:
        subprocess.run(["usermod", "-aG", "ollama", MEMBER], check=True)
    return {"root": User("root", 0, 0), **{n: _user(n) for n in ("ollama", MEMBER, PLAIN)}}


BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  {servicedir}
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Properties"/>
  </policy>
  <includedir>{policy_dir}</includedir>
</busconfig>
"""


@dataclass
class SystemBus:
    address: str
    pid: int
    directory: Path

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DBUS_")}
        env["DBUS_SYSTEM_BUS_ADDRESS"] = self.address
        return env

    def stop(self) -> None:
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass


def start_bus(directory: Path, *, activatable: bool = False) -> SystemBus:
    """A system-type dbus-daemon with the real policy; ``activatable`` adds the activation file."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o755)
    policy_dir = directory / "system.d"
    policy_dir.mkdir(exist_ok=True)
    shutil.copy(POLICY, policy_dir / POLICY.name)
    servicedir = ""
    if activatable:
        services = directory / "system-services"
        services.mkdir(exist_ok=True)
        shutil.copy(ACTIVATION, services / ACTIVATION.name)
        servicedir = f"<servicedir>{services}</servicedir>"
    config = directory / "bus.conf"
    config.write_text(
        BUS_CONFIG.format(
            socket=directory / "socket", servicedir=servicedir, policy_dir=policy_dir
        )
    )
    out = subprocess.run(
        ["dbus-daemon", f"--config-file={config}", "--fork", "--print-address=1",
         "--print-pid=1", "--nosyslog"],
        check=True, capture_output=True, text=True,
    )
    address, pid = out.stdout.split()[:2]
    return SystemBus(address, int(pid), directory)


def import_smollm2(models: Path, gguf_path: Path, home: Path, *, owner: str) -> None:
    """Import smollm2:135m into ``models`` as `llmd create` does, then give ``home`` to ``owner``."""
    import asyncio

    from llmd.store import Store, create_from_modelfile

    modelfile = home / "Modelfile"
    modelfile.write_text(f"FROM {gguf_path}\n")
    asyncio.run(create_from_modelfile(Store(models), "smollm2:135m", modelfile, lambda _: None))
    for path in [home, *home.rglob("*")]:
        shutil.chown(path, owner, owner)


def root_users() -> dict[str, User]:
    """The real accounts the bus tests switch between; they can only be made and used as root."""
    import pytest

    if os.geteuid() != 0:
        pytest.skip("the D-Bus tests create system users and switch to them: run as root")
    return ensure_users()


def shared_tempdir(prefix: str) -> Path:
    """A 0755 directory: not pytest's tmp_path (0700 root), since the bus socket and the store in it
    must be reachable by the ollama user and the test callers. The caller removes it."""
    import tempfile

    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path
