"""How much of a streamed text to hold back because it could still become a marker.

A stop string, a ``</think>`` or a tool-call tag may arrive split across tokens; the text is
released only up to where such a marker could begin. The runner process, the thinking split and
the tool-call parser all ask this, so it lives here, below all three, importing nothing.
"""

from __future__ import annotations


def partial_suffix(text: str, tag: str) -> int:
    """How many trailing characters of ``text`` could begin ``tag`` (never all of ``tag``)."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-n:]):
            return n
    return 0
