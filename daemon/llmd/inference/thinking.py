"""Splitting a thinking model's reasoning from its answer, as the text streams in.

Thinking models (DeepSeek-R1, Qwen3...) open their output with ``<think>``, reason, close with
``</think>`` and then answer; Ollama returns the first part as ``thinking`` and the rest as the
response. Text that could still be the start of a tag is held back until it cannot.

Some templates (QwQ, the DeepSeek-R1 distills) write the opening tag into the prompt themselves,
so the model starts straight with its reasoning: as Ollama does, a rendered prompt that ends with
the tag puts the parser past it from the start (``opens_thinking``).
"""

from __future__ import annotations

from llmd.holdback import partial_suffix

OPENING = "<think>"
CLOSING = "</think>"


def opens_thinking(prompt: str, opening: str = OPENING) -> bool:
    """True when the rendered prompt pre-fills the opening tag (Ollama trims it, then checks)."""
    return prompt.strip().endswith(opening)


class ThinkingParser:
    def __init__(
        self, opening: str = OPENING, closing: str = CLOSING, *, prefilled: bool = False
    ) -> None:
        self.opening = opening
        self.closing = closing
        self._state = "thinking" if prefilled else "start"  # start -> thinking -> answer
        self._buffer = ""

    def feed(self, text: str) -> tuple[str, str]:
        """(thinking, answer) that ``text`` completes."""
        self._buffer += text
        return self._drain(final=False)

    def flush(self) -> tuple[str, str]:
        return self._drain(final=True)

    def _drain(self, final: bool) -> tuple[str, str]:
        thinking = ""
        if self._state == "start":
            head = self._buffer.lstrip()
            if head.startswith(self.opening):
                self._buffer = head[len(self.opening):].lstrip()
                self._state = "thinking"
            elif self.opening.startswith(head) and not final:
                return "", ""  # maybe the tag, still arriving
            else:
                self._state = "answer"
        if self._state == "thinking":
            end = self._buffer.find(self.closing)
            if end >= 0:
                thinking = self._buffer[:end]
                self._buffer = self._buffer[end + len(self.closing):].lstrip()
                self._state = "answer"
            else:
                keep = 0 if final else partial_suffix(self._buffer, self.closing)
                thinking = self._buffer[: len(self._buffer) - keep]
                self._buffer = self._buffer[len(self._buffer) - keep:]
                return thinking, ""
        answer, self._buffer = self._buffer, ""
        return thinking, answer
