"""org.llmd.Manager1 on a system bus, called by real users: who may read, who may change state."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from bus.buslib import MEMBER, PLAIN, SystemBus, User

CALLER = str(Path(__file__).resolve().parent / "caller.py")
MODEL = "smollm2:135m"

pytestmark = pytest.mark.usefixtures("manager")


def call(bus: SystemBus, user: User, action: str, *args: str) -> dict[str, Any]:
    out = subprocess.run(
        user.setpriv(sys.executable, CALLER, action, *args),
        env=bus.env(), capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def running_names(bus: SystemBus, user: User) -> list[str]:
    return [row[0] for row in call(bus, user, "list_running")["ok"]]


def test_every_local_user_can_read_the_status(system_bus: SystemBus, users: dict[str, User]) -> None:
    props = call(system_bus, users[PLAIN], "properties")["ok"]
    assert props["version"]
    assert props["started_at"] > 0
    assert isinstance(props["loaded_models"], list)
    assert props["memory_budget"] >= 0
    assert props["queue_depth"] >= 0
    models = call(system_bus, users[PLAIN], "list_models")["ok"]
    assert MODEL in [row[0] for row in models]


def test_root_can_load_and_unload_a_model(system_bus: SystemBus, users: dict[str, User]) -> None:
    assert call(system_bus, users["root"], "load", MODEL, "") == {"ok": None}
    assert MODEL in running_names(system_bus, users[PLAIN])
    assert call(system_bus, users["root"], "unload", MODEL) == {"ok": None}
    assert MODEL not in running_names(system_bus, users[PLAIN])


def test_a_member_of_the_ollama_group_can_load_and_unload(
    system_bus: SystemBus, users: dict[str, User]
) -> None:
    assert call(system_bus, users[MEMBER], "load", MODEL, "-1") == {"ok": None}
    loaded = call(system_bus, users[PLAIN], "properties")["ok"]["loaded_models"]
    assert [MODEL, loaded[0][1], 0, 0] == loaded[0]  # pinned: expiry 0 means forever
    assert call(system_bus, users[MEMBER], "unload", MODEL) == {"ok": None}


def test_a_plain_user_is_refused_a_state_change_with_a_way_to_get_access(
    system_bus: SystemBus, users: dict[str, User]
) -> None:
    call(system_bus, users["root"], "load", MODEL, "")
    try:
        reply = call(system_bus, users[PLAIN], "unload", MODEL)
        assert reply["error"] == "org.llmd.Error.AccessDenied"
        assert "unloading smollm2:135m" in reply["message"]
        assert "usermod -aG ollama $USER" in reply["message"]
        assert MODEL in running_names(system_bus, users[PLAIN])
        for action, args in (("load", (MODEL, "")), ("delete", (MODEL,)),
                             ("copy", (MODEL, "other:1")), ("reload_config", ())):
            assert call(system_bus, users[PLAIN], action, *args)["error"] == (
                "org.llmd.Error.AccessDenied"
            )
    finally:
        call(system_bus, users["root"], "unload", MODEL)


def test_bad_arguments_get_llmd_errors_by_name(system_bus: SystemBus, users: dict[str, User]) -> None:
    missing = call(system_bus, users["root"], "load", "nosuchmodel", "")
    assert missing["error"] == "org.llmd.Error.ModelNotFound"
    assert missing["message"] == "model 'nosuchmodel:latest' not found"
    bad = call(system_bus, users["root"], "load", MODEL, "soon")
    assert bad == {"error": "org.llmd.Error.InvalidOption",
                   "message": 'time: invalid duration "soon"'}
    idle = call(system_bus, users["root"], "unload", MODEL)
    assert idle["error"] == "org.llmd.Error.ModelNotFound"


def test_pull_needs_admin_rights_and_reports_registry_failures_by_name(
    system_bus: SystemBus, users: dict[str, User]
) -> None:
    denied = call(system_bus, users[PLAIN], "pull", "127.0.0.1:9/library/x:latest")
    assert denied["error"] == "org.llmd.Error.AccessDenied"
    # nothing listens on port 9: the registry error comes back named, not as a generic failure
    reply = call(system_bus, users["root"], "pull", "127.0.0.1:9/library/x:latest")
    assert reply["error"] == "org.llmd.Error.RegistryError", reply


def test_loads_and_unloads_are_signalled_to_every_listener(
    system_bus: SystemBus, users: dict[str, User]
) -> None:
    listener = subprocess.Popen(
        users[PLAIN].setpriv(sys.executable, CALLER, "listen", "2"),
        env=system_bus.env(), stdout=subprocess.PIPE, text=True,
    )
    try:
        assert listener.stdout is not None
        assert listener.stdout.readline().strip() == "listening"
        call(system_bus, users[MEMBER], "load", MODEL, "")
        call(system_bus, users[MEMBER], "unload", MODEL)
        events = [json.loads(listener.stdout.readline()) for _ in range(2)]
        assert events == [["loaded", MODEL], ["unloaded", MODEL, "requested"]]
        assert listener.wait(30) == 0
    finally:
        if listener.poll() is None:
            listener.kill()
            listener.wait()
