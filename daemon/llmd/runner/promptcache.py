"""A host-RAM cache of sequence states, so that a conversation which lost its slot resumes
without evaluating its history again.

When a slot is handed to another request, the KV cells of its sequence are copied out with
llama.cpp's own ``llama_state_seq_get_data``, together with the exact tokens they hold. A later
prompt may have that state copied back (``llama_state_seq_set_data``) only if it begins with every
token of the prompt that filled it, the entry's *key*; whatever follows the common prefix (the
generated tail) is removed before anything is decoded. A cell's K and V depend only on the tokens
at and before its position, so what a request ends up with is exactly what evaluating its own
tokens would have produced: one user's text can never reach another's request.

Entries are kept least recently used first within a byte budget; 0 turns the cache off.
"""

from __future__ import annotations

import ctypes
import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import llama_cpp as lc

log = logging.getLogger(__name__)

# A state smaller than this many tokens is cheaper to evaluate again than to keep.
MIN_TOKENS = 32
_TOKEN_BYTES = 8  # what a token of an entry's key costs in Python lists, roughly


@dataclass(eq=False)
class Entry:
    tokens: list[int]  # what the saved cells hold, position by position
    key: int  # a prompt must repeat tokens[:key] exactly to use this entry
    data: bytearray

    @property
    def size(self) -> int:
        return len(self.data) + _TOKEN_BYTES * len(self.tokens)


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens ``a`` and ``b`` share; list slices compare in C."""
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    lo, hi = 0, n  # a[:lo] == b[:lo] and a[:hi] != b[:hi]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid
    return lo


class PromptCache:
    """Saved sequence states of one context, bounded by ``budget`` bytes."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.used = 0
        self._entries: OrderedDict[int, Entry] = OrderedDict()  # oldest use first
        self._warned = False

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def enabled(self) -> bool:
        return self.budget > 0

    def find(self, prompt: Sequence[int]) -> tuple[Entry, int] | None:
        """The entry ``prompt`` may use that covers most of it, and how many tokens it covers."""
        best: tuple[Entry, int] | None = None
        for entry in self._entries.values():
            if len(prompt) < entry.key or entry.tokens[: entry.key] != prompt[: entry.key]:
                continue
            usable = common_prefix(entry.tokens, prompt)
            if best is None or usable > best[1]:
                best = (entry, usable)
        return best

    def covers(self, tokens: Sequence[int]) -> bool:
        """True when an entry already holds every one of ``tokens`` (and perhaps more)."""
        n = len(tokens)
        return any(len(e.tokens) >= n and e.tokens[:n] == tokens for e in self._entries.values())

    def save(self, ctx: ctypes.c_void_p, seq: int, tokens: list[int], key: int) -> None:
        """Copy sequence ``seq``'s cells, which hold ``tokens``, into the cache."""
        if not self.enabled or len(tokens) < MIN_TOKENS or self.covers(tokens):
            return
        size = int(lc.llama_state_seq_get_size(ctx, seq))
        if size == 0 or size + _TOKEN_BYTES * len(tokens) > self.budget:
            return
        data = bytearray(size)
        written = int(lc.llama_state_seq_get_data(ctx, _pointer(data), size, seq))
        if written == 0:
            return
        if written < size:
            data = data[:written]
        entry = Entry(list(tokens), min(key, len(tokens)), data)
        # An entry whose tokens the new one extends is of no further use.
        for old in [e for e in self._entries.values() if _extends(entry.tokens, e.tokens)]:
            self._remove(old)
        while self._entries and self.used + entry.size > self.budget:
            self._remove(next(iter(self._entries.values())))
        self._entries[id(entry)] = entry
        self.used += entry.size

    def restore(self, ctx: ctypes.c_void_p, mem: ctypes.c_void_p, seq: int, entry: Entry) -> bool:
        """Copy ``entry`` into sequence ``seq``; False (and the sequence emptied) if that fails."""
        ok = int(lc.llama_state_seq_set_data(ctx, _pointer(entry.data), len(entry.data), seq)) > 0
        if ok and lc.llama_memory_seq_pos_max(mem, seq) != len(entry.tokens) - 1:
            ok = False
        if ok:
            if id(entry) in self._entries:
                self._entries.move_to_end(id(entry))
            return True
        lc.llama_memory_seq_rm(mem, seq, -1, -1)
        self._remove(entry)
        if not self._warned:
            # Once per runner: a second failure says nothing new and would flood the journal.
            self._warned = True
            log.warning(
                "a saved prompt state could not be restored; evaluating the prompt instead",
                extra={"TOKENS": len(entry.tokens), "STATE_BYTES": len(entry.data)},
            )
        return False

    def clear(self) -> None:
        self._entries.clear()
        self.used = 0

    def _remove(self, entry: Entry) -> None:
        if self._entries.pop(id(entry), None) is not None:
            self.used -= entry.size


def _extends(longer: list[int], shorter: list[int]) -> bool:
    return len(longer) >= len(shorter) and longer[: len(shorter)] == shorter


def _pointer(data: bytearray) -> ctypes.Array[ctypes.c_uint8]:
    return (ctypes.c_uint8 * len(data)).from_buffer(data)
