"""The key file: hashed at rest, mode 0600, owned by the state directory's owner, live for readers."""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
from pathlib import Path

import pytest

from llmd.errors import ConfigError, InvalidRequest, KeyExists, KeyNotFound
from llmd.keys import KeyStore, Scope, parse_lifetime, parse_scopes
from llmd.keys import store as keystore


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_new_key_is_llmd_and_the_base64url_of_32_random_bytes(tmp_path: Path) -> None:
    keys = KeyStore(tmp_path / "api-keys.json")
    _, first = keys.add("ci")
    _, second = keys.add("ops")
    assert first.startswith("llmd_") and first != second
    raw = base64.urlsafe_b64decode(first.removeprefix("llmd_") + "=")
    assert len(raw) == 32


def test_the_key_file_holds_no_plain_key_only_its_sha256_and_is_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "api-keys.json"
    key, secret = KeyStore(path).add("ci", (Scope.MODELS,), max_concurrent=2)
    text = path.read_text()
    assert secret not in text and secret.removeprefix("llmd_") not in text
    entry = json.loads(text)["keys"][0]
    assert entry["sha256"] == key.digest and len(key.digest) == 64
    assert (entry["name"], entry["scopes"], entry["max_concurrent"]) == ("ci", ["models"], 2)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not [p.name for p in tmp_path.iterdir() if p.name != "api-keys.json"]  # no temp left


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file away needs root")
def test_a_key_file_written_by_root_belongs_to_the_owner_of_its_directory(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    os.chown(state, 65534, 65534)  # nobody:nogroup stands for the ollama user here
    KeyStore(state / "api-keys.json").add("ci")
    st = (state / "api-keys.json").stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (65534, 65534, 0o600)


def test_a_key_added_or_removed_by_another_writer_counts_at_the_next_lookup(tmp_path: Path) -> None:
    path = tmp_path / "api-keys.json"
    daemon, offline = KeyStore(path), KeyStore(path)
    daemon.check()
    _, secret = offline.add("ci")
    found = daemon.find(secret)
    assert found is not None and found.name == "ci"
    offline.remove("ci")
    assert daemon.find(secret) is None


def test_a_wrong_key_matches_nothing_and_names_must_be_unique(tmp_path: Path) -> None:
    keys = KeyStore(tmp_path / "api-keys.json")
    _, secret = keys.add("ci")
    assert keys.find(secret[:-1] + ("A" if secret[-1] != "A" else "B")) is None
    assert keys.find("") is None
    with pytest.raises(KeyExists):
        keys.add("ci")
    with pytest.raises(KeyNotFound):
        keys.remove("nobody")
    with pytest.raises(InvalidRequest):
        keys.add("has space")


def test_a_malformed_key_file_refuses_to_start_and_accepts_no_key_while_serving(
    tmp_path: Path,
) -> None:
    path = tmp_path / "api-keys.json"
    keys = KeyStore(path)
    _, secret = keys.add("ci")
    backup = tmp_path / "good.json"
    shutil.copy(path, backup)
    path.write_text("{not json")
    assert keys.find(secret) is None  # fail closed: a broken file keeps no revoked key alive
    with pytest.raises(ConfigError, match="not valid JSON"):
        KeyStore(path).check()
    with pytest.raises(ConfigError):
        keys.add("other")  # never overwrite a file it cannot read
    for text in ('{"version": 1, "keys": 5}', '{"version": 1, "keys": ["ci"]}', '{"keys": []}'):
        path.write_text(text)
        with pytest.raises(ConfigError, match="an API key file written by llmd"):
            KeyStore(path).check()
    os.replace(backup, path)
    assert keys.find(secret) is not None


def test_an_expired_key_is_found_but_says_it_has_expired(tmp_path: Path) -> None:
    clock = Clock()
    keys = KeyStore(tmp_path / "api-keys.json", clock=clock)
    key, secret = keys.add("temp", lifetime=parse_lifetime("1h"))
    assert key.expires_at == int(clock.now) + 3600
    assert not key.expired(clock.now + 3599)
    found = keys.find(secret)
    assert found is not None and found.expired(clock.now + 3600)


def test_last_use_is_written_to_the_file_at_most_once_a_minute(tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "api-keys.json"
    keys = KeyStore(path, clock=clock)
    key, _ = keys.add("ci")
    clock.now += 5
    assert keys.touch(key) is False
    assert keys.keys()[0].last_used_at == int(clock.now)  # listed at once, from memory
    assert json.loads(path.read_text())["keys"][0]["last_used_at"] == 0
    clock.now += keystore.USAGE_FLUSH_INTERVAL
    assert keys.touch(key) is True
    assert keys.touch(key) is False  # the write is on its way: one per interval
    keys.write_usage()
    assert json.loads(path.read_text())["keys"][0]["last_used_at"] == int(clock.now)


def test_each_scope_includes_the_ones_before_it() -> None:
    assert Scope.MODELS.covers(Scope.INFERENCE) and Scope.ALL.covers(Scope.MODELS)
    assert not Scope.INFERENCE.covers(Scope.MODELS) and not Scope.MODELS.covers(Scope.ALL)
    assert parse_scopes([]) == (Scope.INFERENCE,)
    assert parse_scopes(["models", "Models", "all"]) == (Scope.MODELS, Scope.ALL)
    with pytest.raises(InvalidRequest, match="unknown scope 'admin'"):
        parse_scopes(["admin"])


def test_lifetimes_are_go_durations_or_days() -> None:
    assert parse_lifetime("") == 0
    assert parse_lifetime("30d") == 30 * 86400
    assert parse_lifetime("1h30m") == 5400
    for bad in ("-1h", "soon", "0s", "200000d"):
        with pytest.raises(InvalidRequest, match="invalid expiry"):
            parse_lifetime(bad)


def test_requests_in_flight_are_bounded_by_max_concurrent(tmp_path: Path) -> None:
    keys = KeyStore(tmp_path / "api-keys.json")
    key, _ = keys.add("ci", max_concurrent=1)
    free, _ = keys.add("free")
    assert keys.acquire(key) and not keys.acquire(key)
    keys.release(key)
    assert keys.acquire(key)
    assert all(keys.acquire(free) for _ in range(50))
