"""Content digests: the ``sha256:<hex>`` API form and the ``sha256-<hex>`` file name."""

from __future__ import annotations

import re

from llmd.errors import InvalidDigest

_DIGEST = re.compile(r"sha256[:-]([0-9a-fA-F]{64})")


def parse_digest(text: str) -> str:
    """``sha256:<hex>`` or ``sha256-<hex>`` -> ``sha256:<hex>`` (lower case)."""
    m = _DIGEST.fullmatch(text) if isinstance(text, str) else None
    if m is None:
        raise InvalidDigest("invalid digest format")
    return f"sha256:{m.group(1).lower()}"


def blob_filename(digest: str) -> str:
    """The on-disk name: ``:`` becomes ``-`` because ``:`` is awkward in file names."""
    return parse_digest(digest).replace(":", "-", 1)


def digest_of_hex(hexdigest: str) -> str:
    return f"sha256:{hexdigest}"


def short(digest: str) -> str:
    """Ollama's progress id: the 12 hex characters after ``sha256:``."""
    return digest[7:19]
