"""``llmctl key`` against a real ``llmd serve`` running as ollama on a private system bus, with
``auth: required``: a key made over D-Bus opens HTTP at once, and ``rm`` closes it again."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from bus.buslib import MEMBER, PLAIN, SystemBus, User, start_bus
from ctl_admin.test_admin_commands import llmctl
from harness import free_port, wait_until_up

from llmctl.errors import ExitCode


@dataclass
class Serving:
    bus: SystemBus
    url: str
    keys: Path


@pytest.fixture(scope="module")
def serving(workdir: Path, users: dict[str, User]) -> Iterator[Serving]:
    bus = start_bus(workdir / "keys-bus")
    home = workdir / "keys-daemon"
    (home / "models").mkdir(parents=True)
    (home / "llmd.yaml").write_text("auth: required\n")
    for path in (home, home / "models", home / "llmd.yaml"):
        shutil.chown(path, "ollama", "ollama")
    port = free_port()
    env = {**bus.env(), "OLLAMA_HOST": f"127.0.0.1:{port}", "OLLAMA_MODELS": str(home / "models")}
    log = workdir / "keys-llmd.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            users["ollama"].setpriv(sys.executable, "-m", "llmd", "serve", "--config",
                                    str(home / "llmd.yaml")),
            env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=home,
        )
    try:
        wait_until_up(f"http://127.0.0.1:{port}", process, log, 60)
        yield Serving(bus, f"http://127.0.0.1:{port}", home / "api-keys.json")
    finally:
        process.terminate()
        process.wait(15)
        bus.stop()


def tags(serving: Serving, secret: str) -> int:
    return httpx.get(f"{serving.url}/api/tags", headers={"Authorization": f"Bearer {secret}"},
                     timeout=30).status_code


def test_a_plain_user_is_refused_llmctl_key_add_in_one_line(
    serving: Serving, users: dict[str, User]
) -> None:
    out = llmctl(users[PLAIN], "key", "add", "mine", env=serving.bus.env())
    assert out.returncode == ExitCode.ACCESS_DENIED
    assert out.stdout == ""
    assert out.stderr.startswith("Error: permission denied: adding the API key mine needs root")
    assert out.stderr.count("\n") == 1
    assert llmctl(users[PLAIN], "key", "list", env=serving.bus.env()).returncode == (
        ExitCode.ACCESS_DENIED
    )


def test_root_adds_a_key_that_works_at_once_and_stops_working_once_removed(
    serving: Serving, users: dict[str, User]
) -> None:
    env = serving.bus.env()
    out = llmctl(users["root"], "key", "add", "ci", "--expires", "30d", env=env)
    assert out.returncode == 0, out.stderr
    secret = out.stdout.strip()
    assert secret.startswith("llmd_") and out.stdout.count("\n") == 1
    assert "cannot be shown again" in out.stderr
    assert tags(serving, secret) == 200  # no restart
    assert secret not in serving.keys.read_text()
    assert serving.keys.stat().st_uid == users["ollama"].uid

    listed = llmctl(users["root"], "key", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()[:2]
    assert header.split()[:3] == ["NAME", "SCOPES", "CREATED"]
    assert row.split()[:2] == ["ci", "inference"]
    as_json = json.loads(llmctl(users["root"], "key", "list", "--json", env=env).stdout)
    assert [k["name"] for k in as_json] == ["ci"] and as_json[0]["last_used_at"] is not None
    assert secret not in listed.stdout + json.dumps(as_json)

    removed = llmctl(users["root"], "key", "rm", "ci", env=env)
    assert (removed.returncode, removed.stdout) == (0, "removed API key 'ci'\n")
    assert tags(serving, secret) == 401


def test_a_member_of_the_ollama_group_may_add_keys_with_a_scope(
    serving: Serving, users: dict[str, User]
) -> None:
    env = serving.bus.env()
    out = llmctl(users[MEMBER], "key", "add", "ops", "--scope", "models", env=env)
    assert out.returncode == 0, out.stderr
    secret = out.stdout.strip()
    copy = httpx.post(f"{serving.url}/api/copy", json={"source": "none:1", "destination": "b:1"},
                      headers={"Authorization": f"Bearer {secret}"}, timeout=30)
    assert copy.status_code == 404  # past the key check: there is no such model
    assert llmctl(users[MEMBER], "key", "rm", "ops", env=env).returncode == 0
    bad = llmctl(users[MEMBER], "key", "add", "x", "--expires", "soon", env=env)
    assert bad.returncode == ExitCode.ERROR and bad.stderr.startswith("Error: invalid expiry 'soon'")
