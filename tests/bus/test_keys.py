"""API keys over org.llmd.Manager1: AddKey, ListKeys, RemoveKey need admin rights, as Load does."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from bus.buslib import MEMBER, PLAIN, SystemBus, User
from bus.test_manager import call

pytestmark = pytest.mark.usefixtures("manager")


def key_file(bus_dir: Path) -> Path:
    return bus_dir / "daemon" / "api-keys.json"  # beside the manager's models directory


def test_a_plain_user_may_not_add_list_or_remove_keys(
    system_bus: SystemBus, users: dict[str, User]
) -> None:
    plain = users[PLAIN]
    for action, args in (("add_key", ("ci", "json:[]", "json:0", "json:0")),
                         ("list_keys", ()), ("remove_key", ("ci",))):
        reply = call(system_bus, plain, action, *args)
        assert reply["error"] == "org.llmd.Error.AccessDenied", (action, reply)
        assert "usermod -aG ollama $USER" in reply["message"]


def test_root_adds_a_key_shown_once_stored_hashed_for_the_ollama_user(
    system_bus: SystemBus, users: dict[str, User], bus_dir: Path
) -> None:
    secret = call(system_bus, users["root"], "add_key", "ci", 'json:["models"]', "json:3600",
                  "json:2")["ok"]
    try:
        assert secret.startswith("llmd_") and len(secret) == 5 + 43
        rows = call(system_bus, users["root"], "list_keys")["ok"]
        [(name, scopes, created, expires, used, limit)] = [r for r in rows if r[0] == "ci"]
        assert (name, scopes, expires - created, used, limit) == ("ci", ["models"], 3600, 0, 2)
        assert secret not in json.dumps(rows)
        path = key_file(bus_dir)
        st = path.stat()
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (users["ollama"].uid, 0o600)
        assert secret not in path.read_text()
    finally:
        assert call(system_bus, users["root"], "remove_key", "ci") == {"ok": None}
    assert "ci" not in [r[0] for r in call(system_bus, users["root"], "list_keys")["ok"]]


def test_a_member_of_the_ollama_group_manages_keys_and_bad_ones_get_named_errors(
    system_bus: SystemBus, users: dict[str, User]
) -> None:
    member = users[MEMBER]
    assert call(system_bus, member, "add_key", "m1", "json:[]", "json:0", "json:0")["ok"]
    again = call(system_bus, member, "add_key", "m1", "json:[]", "json:0", "json:0")
    assert again["error"] == "org.llmd.Error.InvalidRequest"
    bad = call(system_bus, member, "add_key", "m2", 'json:["admin"]', "json:0", "json:0")
    assert (bad["error"], bad["message"]) == (
        "org.llmd.Error.InvalidRequest", "unknown scope 'admin' (scopes: inference, models, all)"
    )
    assert call(system_bus, member, "remove_key", "m1") == {"ok": None}
    assert call(system_bus, member, "remove_key", "m1")["error"] == "org.llmd.Error.NotFound"
