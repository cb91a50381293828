"""Turn a slot's token pieces into the text deltas a client sees.

Two things are held back until they are settled: the trailing bytes of a UTF-8 character that a
token split (byte-fallback tokens do this), and any tail that could still become a stop string.
A stop string itself is never emitted (Ollama trims it from the response).
"""

from __future__ import annotations

import codecs
from collections.abc import Sequence

from llmd.holdback import partial_suffix


class TextStream:
    def __init__(self, stops: Sequence[str]) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._stops = tuple(s for s in stops if s)
        self._held = ""
        self.stopped = False
        self.stop = ""  # the stop string that ended the text, once one has

    def push(self, piece: bytes) -> str:
        """Add a token's bytes; return the text that is now safe to emit."""
        if self.stopped:
            return ""
        self._held += self._decoder.decode(piece)
        if not self._stops:
            out, self._held = self._held, ""
            return out
        first, self.stop = min(
            ((i, s) for s in self._stops if (i := self._held.find(s)) >= 0), default=(-1, "")
        )
        if first >= 0:
            self.stopped = True
            out, self._held = self._held[:first], ""
            return out
        keep = max(partial_suffix(self._held, stop) for stop in self._stops)
        cut = len(self._held) - keep
        out, self._held = self._held[:cut], self._held[cut:]
        return out

    def flush(self) -> str:
        """The generation ended without a stop string: everything held is real output."""
        if self.stopped:
            return ""
        out = self._held + self._decoder.decode(b"", final=True)
        self._held = ""
        return out
