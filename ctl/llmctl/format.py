"""Ollama's CLI formats: decimal sizes, relative times, parameter counts, borderless tables."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Sequence


def human_bytes(size: int) -> str:
    """format.HumanBytes: 1 KB = 1000 B; ``98 MB``, ``4.7 GB``."""
    for unit, scale in (("TB", 1000**4), ("GB", 1000**3), ("MB", 1000**2), ("KB", 1000)):
        if size >= scale:
            value = size / scale
            if value >= 10 or value == math.trunc(value):
                return f"{int(value)} {unit}"
            return f"{value:.1f} {unit}"
    return f"{size} B"


def human_number(count: int) -> str:
    """format.HumanNumber: ``134.52M``, ``7B``, ``1.5B``."""
    if count >= 1_000_000_000:
        value = count / 1_000_000_000
        return f"{value:.0f}B" if value.is_integer() else f"{value:.1f}B"
    if count >= 1_000_000:
        value = count / 1_000_000
        return f"{value:.0f}M" if value.is_integer() else f"{value:.2f}M"
    if count >= 1_000:
        return f"{count / 1_000:.0f}K"
    return str(count)


def _duration(seconds: float) -> str:
    whole = int(seconds)
    if whole < 1:
        return "Less than a second"
    if whole == 1:
        return "1 second"
    if whole < 60:
        return f"{whole} seconds"
    minutes = whole // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = round(seconds / 3600)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600 / 24 / 365)} years"


def human_time(moment: datetime, now: datetime | None = None) -> str:
    """format.HumanTime: ``2 days ago``, ``4 minutes from now``, ``Forever`` beyond 20 years."""
    now = now or datetime.now(timezone.utc)
    delta = (now - moment).total_seconds()
    if delta / 3600 / 24 / 365 < -20:
        return "Forever"
    if delta < 0:
        return _duration(-delta) + " from now"
    return _duration(delta) + " ago"


def parse_time(text: str) -> datetime:
    """An RFC3339 timestamp from the API (Python before 3.11 rejects some; nanoseconds cut)."""
    text = text.replace("Z", "+00:00")
    head, dot, rest = text.partition(".")
    if dot:
        count = len(rest) - len(rest.lstrip("0123456789"))
        rest = rest[:count][:6] + rest[count:]
        text = f"{head}.{rest}"
    return datetime.fromisoformat(text)


def table(header: Sequence[str], rows: Sequence[Sequence[str]], pad: int = 4) -> str:
    """Left-aligned columns without borders, as Ollama's tablewriter setup prints them."""
    widths = [len(h) for h in header]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row)]
    lines = []
    for row in (header, *rows):
        cells = [cell.ljust(width + pad) for cell, width in zip(row, widths)]
        lines.append("".join(cells).rstrip())
    return "\n".join(lines)
