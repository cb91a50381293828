"""llmctl status/load/unload/reload over D-Bus: output, --json, and one-line errors with codes."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Mapping

from bus.buslib import MEMBER, PLAIN, SystemBus, User

from llmctl.errors import ExitCode

MODEL = "smollm2:135m"


def llmctl(user: User, *args: str, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        user.setpriv(sys.executable, "-m", "llmctl", *args),
        env=dict(env), capture_output=True, text=True, timeout=120,
    )


def test_status_without_a_system_bus_says_so_in_one_line(
    empty_bus: SystemBus, users: dict[str, User]
) -> None:
    env = {**empty_bus.env(), "DBUS_SYSTEM_BUS_ADDRESS": "unix:path=/nonexistent/bus"}
    out = llmctl(users[PLAIN], "status", env=env)
    assert out.returncode == ExitCode.UNREACHABLE
    assert out.stderr == (
        "llmctl: cannot connect to the system bus at unix:path=/nonexistent/bus: "
        "no such file or directory\n"
    )


def test_status_when_llmd_is_not_installed(empty_bus: SystemBus, users: dict[str, User]) -> None:
    out = llmctl(users[PLAIN], "status", env=empty_bus.env())
    assert out.returncode == ExitCode.NOT_INSTALLED
    assert out.stderr.startswith("llmctl: llmd is not installed on this system")
    assert out.stderr.count("\n") == 1


def test_status_when_llmd_is_installed_but_cannot_be_started(
    activatable_bus: SystemBus, users: dict[str, User]
) -> None:
    out = llmctl(users[PLAIN], "status", env=activatable_bus.env())
    assert out.returncode == ExitCode.UNREACHABLE
    assert out.stderr.startswith("llmctl: llmd is not running on the system bus")
    assert out.stderr.count("\n") == 1


def test_a_plain_user_reads_the_status_as_text_and_json(
    live_bus: SystemBus, users: dict[str, User]
) -> None:
    out = llmctl(users[PLAIN], "status", env=live_bus.env())
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("llmd ")
    assert "Memory budget:" in out.stdout
    data = json.loads(llmctl(users[PLAIN], "status", "--json", env=live_bus.env()).stdout)
    assert set(data) == {"version", "started_at", "uptime_seconds", "queue_depth",
                         "memory_budget", "models", "failed"}
    assert data["failed"] == []


def test_a_plain_user_is_denied_unload_with_its_own_exit_code(
    live_bus: SystemBus, users: dict[str, User]
) -> None:
    out = llmctl(users[PLAIN], "unload", MODEL, env=live_bus.env())
    assert out.returncode == ExitCode.ACCESS_DENIED
    assert out.stderr.startswith("Error: permission denied: unloading smollm2:135m")
    assert "usermod -aG ollama $USER" in out.stderr
    assert out.stderr.count("\n") == 1


def test_a_member_loads_shows_and_unloads_a_model(
    live_bus: SystemBus, users: dict[str, User]
) -> None:
    env = live_bus.env()
    out = llmctl(users[MEMBER], "load", MODEL, "--keep-alive", "10m", env=env)
    assert (out.returncode, out.stdout) == (0, f"loaded {MODEL}\n"), out.stderr
    status = json.loads(llmctl(users[PLAIN], "status", "--json", env=env).stdout)
    assert [m["name"] for m in status["models"]] == [MODEL]
    assert status["models"][0]["expires_at"] is not None
    assert MODEL in llmctl(users[PLAIN], "status", env=env).stdout
    out = llmctl(users[MEMBER], "unload", MODEL, "--json", env=env)
    assert json.loads(out.stdout) == {"status": "success", "name": MODEL}
    again = llmctl(users[MEMBER], "unload", MODEL, env=env)
    assert (again.returncode, again.stderr) == (
        ExitCode.ERROR, f'Error: couldn\'t find model "{MODEL}" to stop\n'
    )


def test_root_reloads_the_configuration(live_bus: SystemBus, users: dict[str, User]) -> None:
    out = llmctl(users["root"], "reload", env=live_bus.env())
    assert (out.returncode, out.stdout) == (0, "configuration reloaded\n"), out.stderr


def test_a_bad_keep_alive_is_reported_with_gos_wording(
    live_bus: SystemBus, users: dict[str, User]
) -> None:
    out = llmctl(users["root"], "load", MODEL, "--keep-alive", "soon", env=live_bus.env())
    assert (out.returncode, out.stderr) == (ExitCode.ERROR, 'Error: time: invalid duration "soon"\n')


def test_status_shows_a_model_cooling_down_after_crashes_and_load_retries_it_at_once(
    crashing_bus: SystemBus, users: dict[str, User]
) -> None:
    env = crashing_bus.env()
    for _ in range(3):
        out = llmctl(users[MEMBER], "load", MODEL, env=env)
        assert out.returncode == ExitCode.ERROR
        assert "llama runner process has terminated: signal: segmentation fault" in out.stderr
    [failed] = json.loads(llmctl(users[PLAIN], "status", "--json", env=env).stdout)["failed"]
    assert failed["name"] == MODEL and failed["failures"] == 3
    assert failed["status"] == "signal: segmentation fault" and failed["retry_at"]
    text = llmctl(users[PLAIN], "status", env=env).stdout
    assert "FAILED" in text and "crashed 3x: signal: segmentation fault" in text
    assert "journalctl -u llmd MESSAGE_ID=" in text
    # An explicit load does not wait for the cool-down: it spawns again, and fails again.
    out = llmctl(users[MEMBER], "load", MODEL, env=env)
    assert "signal: segmentation fault" in out.stderr and "next try" not in out.stderr
    [failed] = json.loads(llmctl(users[PLAIN], "status", "--json", env=env).stdout)["failed"]
    assert failed["failures"] == 4
