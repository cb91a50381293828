"""The key file: one llmd's API keys, hashed, in its state directory (``Config.api_keys_path``).

Shared by the daemon (authentication, D-Bus ``AddKey``/``RemoveKey``) and ``llmd key`` run
offline. Every change is a read-modify-write under ``flock`` on the directory, so the daemon and a
provisioning script never lose each other's changes, and lands by rename: a temp file written,
made mode 0600 and (when root writes it) given to the directory's owner, fsynced, renamed over.
Readers look at the file's identity (inode, size, mtime) before each check and re-read it when it
changed, so a key added or removed by anyone counts from the next request on, without a restart.

Last use is kept in memory and written at most once a minute (``USAGE_FLUSH_INTERVAL``): a
request never waits for a disk write.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from llmd.errors import ConfigError, KeyExists, KeyNotFound
from llmd.keys.values import ApiKey, Scope, check_name, digest_of, new_secret

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
USAGE_FLUSH_INTERVAL = 60.0  # seconds between writes of last-use times

Keys = tuple[ApiKey, ...]
_STAT_FAILED = (-1, -1, -1)


def _record(key: ApiKey) -> dict[str, Any]:
    return {
        "name": key.name,
        "sha256": key.digest,
        "scopes": [s.value for s in key.scopes],
        "created_at": key.created_at,
        "expires_at": key.expires_at,
        "last_used_at": key.last_used_at,
        "max_concurrent": key.max_concurrent,
    }


def _parse(path: Path, text: str) -> Keys:
    def bad(problem: str) -> ConfigError:
        return ConfigError(str(path), None, f"{problem} (an API key file written by llmd)")

    try:
        data = json.loads(text)
    except ValueError as exc:
        raise bad(f"not valid JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("version") != FORMAT_VERSION:
        raise bad(f"not version {FORMAT_VERSION} of the format")
    if not isinstance(data.get("keys", []), list):
        raise bad("'keys' is not a list")
    keys: list[ApiKey] = []
    for item in data.get("keys", []):
        try:
            keys.append(ApiKey(
                name=check_name(str(item["name"])),
                digest=str(item["sha256"]),
                scopes=tuple(Scope(s) for s in item["scopes"]),
                created_at=int(item.get("created_at", 0)),
                expires_at=int(item.get("expires_at", 0)),
                last_used_at=int(item.get("last_used_at", 0)),
                max_concurrent=int(item.get("max_concurrent", 0)),
            ))
        except (KeyError, TypeError, ValueError) as exc:
            raise bad(f"key entry {len(keys) + 1} is malformed ({exc})") from None
    return tuple(keys)


def _give_to_owner_of(fd: int, directory: Path) -> None:
    """Root provisioning for a daemon running as ``ollama``: the file must stay the daemon's."""
    if os.geteuid() != 0:
        return
    st = os.stat(directory)
    os.fchown(fd, st.st_uid, st.st_gid)


class KeyStore:
    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self._clock = clock
        self._keys: Keys = ()
        self._seen: tuple[int, int, int] | None = None  # identity of the file _keys came from
        self._used: dict[str, int] = {}  # last use by name, newer than the file's
        self._flushed_at = clock()
        self._in_flight: dict[str, int] = {}

    # --- reading ---------------------------------------------------------------------------------

    def check(self) -> None:
        """Read the file now; ConfigError if it is unreadable or malformed (refuse to start)."""
        self._seen = None
        self._keys = self._read_strict()
        self._seen = self._identity()

    def _identity(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def _read_strict(self) -> Keys:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return ()
        except (OSError, UnicodeDecodeError) as exc:
            problem = getattr(exc, "strerror", None) or str(exc)
            raise ConfigError(str(self.path), None, f"cannot read: {problem.lower()}") from None
        return _parse(self.path, text)

    def refresh(self) -> None:
        """Re-read the file if it changed since the last look."""
        try:
            identity = self._identity()
        except OSError as exc:
            self._fail(_STAT_FAILED, f"cannot read: {(exc.strerror or str(exc)).lower()}")
            return
        if identity == self._seen:
            return
        try:
            self._keys = self._read_strict()
        except ConfigError as exc:
            self._fail(identity, exc.message)
            return
        self._seen = identity

    def _fail(self, identity: tuple[int, int, int], problem: str) -> None:
        if identity != self._seen:
            log.error(
                "API key file unusable: no key is accepted until it is fixed",
                extra={"error": problem, "path": str(self.path)},
            )
        # fail closed: a broken file must not keep a revoked key valid
        self._keys, self._seen = (), identity

    def keys(self) -> Keys:
        """Every key, with last-use times not yet written merged in."""
        self.refresh()
        return tuple(self._with_usage(k) for k in self._keys)

    def find(self, secret: str) -> ApiKey | None:
        """The key whose secret this is (expired ones too: the caller tells them apart)."""
        self.refresh()
        digest = digest_of(secret)
        found = None
        for key in self._keys:  # no early exit: every stored digest is compared
            if key.matches(digest):
                found = key
        return found

    def _with_usage(self, key: ApiKey) -> ApiKey:
        used = self._used.get(key.name, 0)
        if used <= key.last_used_at:
            return key
        return ApiKey(
            key.name, key.digest, key.scopes, key.created_at, key.expires_at, used,
            key.max_concurrent,
        )

    # --- changes ---------------------------------------------------------------------------------

    def add(
        self,
        name: str,
        scopes: tuple[Scope, ...] = (Scope.INFERENCE,),
        *,
        lifetime: int = 0,
        max_concurrent: int = 0,
    ) -> tuple[ApiKey, str]:
        """Create a key; returns it and its secret, which exists nowhere else from now on."""
        check_name(name)
        if max_concurrent < 0:
            raise ValueError("max_concurrent must not be negative")
        secret = new_secret()
        now = int(self._clock())
        key = ApiKey(
            name=name,
            digest=digest_of(secret),
            scopes=scopes,
            created_at=now,
            expires_at=now + lifetime if lifetime else 0,
            max_concurrent=max_concurrent,
        )

        def change(keys: Keys) -> Keys:
            if any(k.name == name for k in keys):
                raise KeyExists(name)
            return (*keys, key)

        self._change(change)
        return key, secret

    def remove(self, name: str) -> None:
        def change(keys: Keys) -> Keys:
            if not any(k.name == name for k in keys):
                raise KeyNotFound(name)
            return tuple(k for k in keys if k.name != name)

        self._change(change)
        self._used.pop(name, None)

    def touch(self, key: ApiKey) -> bool:
        """Note a use of ``key``; True when it is time to ``write_usage`` (in a thread)."""
        now = self._clock()
        self._used[key.name] = int(now)
        due = now - self._flushed_at >= USAGE_FLUSH_INTERVAL
        if due:
            self._flushed_at = now  # here, not in the thread: one write per interval, not per request
        return due

    def write_usage(self) -> None:
        if self._used:
            self._change(lambda keys: keys)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        directory = self.path.parent
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _change(self, change: Callable[[Keys], Keys]) -> None:
        with self._locked():
            keys = tuple(self._with_usage(k) for k in change(self._read_strict()))
            self._write(keys)
            self._keys, self._seen = keys, self._identity()
        self._used = {n: t for n, t in self._used.items() if t > self._stored_use(n)}

    def _stored_use(self, name: str) -> int:
        return next((k.last_used_at for k in self._keys if k.name == name), 1 << 62)

    def _write(self, keys: Keys) -> None:
        directory = self.path.parent
        text = json.dumps(
            {"version": FORMAT_VERSION, "keys": [_record(k) for k in keys]}, indent=2
        )
        # mkstemp creates the file 0600, so it is never readable by others, not even briefly
        fd, temp = tempfile.mkstemp(dir=directory, prefix=f".{self.path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text + "\n")
                f.flush()
                os.fchmod(f.fileno(), 0o600)
                _give_to_owner_of(f.fileno(), directory)
                os.fsync(f.fileno())
            os.replace(temp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)  # the rename itself survives a crash
        finally:
            os.close(dir_fd)

    # --- requests in flight (max_concurrent) -----------------------------------------------------

    def acquire(self, key: ApiKey) -> bool:
        """Take one of ``key``'s request slots; False when it has max_concurrent in flight."""
        count = self._in_flight.get(key.name, 0)
        if key.max_concurrent and count >= key.max_concurrent:
            return False
        self._in_flight[key.name] = count + 1
        return True

    def release(self, key: ApiKey) -> None:
        count = self._in_flight.get(key.name, 1) - 1
        if count > 0:
            self._in_flight[key.name] = count
        else:
            self._in_flight.pop(key.name, None)
