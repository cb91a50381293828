"""API keys as values: scopes, the stored record of a key, names, lifetimes and the secret itself.

A key is ``llmd_`` + base64url of 32 random bytes. Only its SHA-256 is ever stored: a key carries
256 bits of entropy, so there is no dictionary or brute force for a slow password hash (bcrypt,
argon2) to slow down, and a fast hash keeps checking a key cheap on every request; what the hash
buys is that whoever reads the key file cannot use what they read as a key.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from llmd.config import parse_go_duration
from llmd.errors import InvalidRequest

PREFIX = "llmd_"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
_DAYS = re.compile(r"(\d+)d")
MAX_LIFETIME = 100 * 365 * 86400


class Scope(enum.Enum):
    """What a key may do; each scope includes the ones before it."""

    INFERENCE = "inference"  # generate, chat, embed, /v1/* inference, tags, show, ps, version
    MODELS = "models"  # create, copy, delete, blobs, pull, push
    ALL = "all"  # nothing more over HTTP today: the name for future admin routes

    @property
    def rank(self) -> int:
        return list(Scope).index(self)

    def covers(self, needed: Scope) -> bool:
        return self.rank >= needed.rank

    @classmethod
    def parse(cls, text: str) -> Scope:
        try:
            return cls(text.strip().lower())
        except ValueError:
            names = ", ".join(s.value for s in cls)
            raise InvalidRequest(f"unknown scope '{text}' (scopes: {names})") from None


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One key as stored: never the secret, only its digest. Times are unix seconds, 0 = none."""

    name: str
    digest: str  # hex SHA-256 of the whole key, prefix included
    scopes: tuple[Scope, ...]
    created_at: int
    expires_at: int = 0
    last_used_at: int = 0
    max_concurrent: int = 0  # requests in flight at once; 0 = no limit

    def grants(self, needed: Scope) -> bool:
        return any(scope.covers(needed) for scope in self.scopes)

    def expired(self, now: float) -> bool:
        return 0 < self.expires_at <= now

    def info(self) -> tuple[str, list[str], int, int, int, int]:
        """The fields a listing shows, in D-Bus's KeyInfo order; never the digest."""
        return (self.name, [s.value for s in self.scopes], self.created_at, self.expires_at,
                self.last_used_at, self.max_concurrent)

    def matches(self, digest: str) -> bool:
        # constant time, so response timing says nothing about how much of a guess was right
        return hmac.compare_digest(self.digest, digest)


def new_secret() -> str:
    return PREFIX + secrets.token_urlsafe(32)  # 32 bytes -> 43 base64url characters, no padding


def digest_of(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogateescape")).hexdigest()


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise InvalidRequest(
            f"invalid key name '{name}': use up to 64 letters, digits and . _ @ -, "
            "starting with a letter or digit"
        )
    return name


def parse_lifetime(text: str) -> int:
    """Seconds from ``--expires``: a Go duration ("720h", "90m") or days ("30d"); "" = never (0)."""
    text = text.strip()
    if not text or text in ("0", "never"):
        return 0
    days = _DAYS.fullmatch(text)
    try:
        seconds = int(days.group(1)) * 86400 if days else parse_go_duration(text)
    except ValueError as exc:
        raise InvalidRequest(f"invalid expiry {text!r}: {exc}") from None
    if seconds <= 0:
        raise InvalidRequest(f"invalid expiry {text!r}: must be in the future")
    if seconds > MAX_LIFETIME:
        raise InvalidRequest(f"invalid expiry {text!r}: at most 100 years (or none: omit it)")
    return max(1, round(seconds))


def parse_scopes(texts: list[str] | tuple[str, ...]) -> tuple[Scope, ...]:
    """The scopes named, in order, duplicates dropped; none named means ``inference``."""
    return tuple(dict.fromkeys(Scope.parse(t) for t in texts)) or (Scope.INFERENCE,)


def _iso(seconds: int) -> str | None:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat() if seconds else None


def listing(
    name: str, scopes: list[str], created_at: int, expires_at: int, last_used_at: int,
    max_concurrent: int,
) -> dict[str, Any]:
    """One key as ``llmctl key list --json`` and ``llmd key list`` print it (D-Bus's KeyInfo order)."""
    return {
        "name": name,
        "scopes": list(scopes),
        "created_at": _iso(created_at),
        "expires_at": _iso(expires_at),
        "last_used_at": _iso(last_used_at),
        "max_concurrent": max_concurrent or None,
    }
