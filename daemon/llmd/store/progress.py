"""Ollama's ProgressResponse line, shared by pull/push (transfer.py) and create --quantize."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Progress:
    """One ProgressResponse line: ``{"status", "digest"?, "total"?, "completed"?}``."""

    status: str
    digest: str | None = None
    total: int | None = None
    completed: int | None = None

    def to_json(self) -> dict[str, object]:
        # Go's omitempty drops zero values; clients treat a missing "completed" as 0
        out: dict[str, object] = {"status": self.status}
        for key in ("digest", "total", "completed"):
            value = getattr(self, key)
            if value:
                out[key] = value
        return out
