"""Tokenizer access over llama.cpp's vocab: text ↔ token ids, pieces, end-of-generation."""

from __future__ import annotations

import ctypes
from collections.abc import Sequence

import llama_cpp as lc


class Vocab:
    def __init__(self, model: ctypes.c_void_p) -> None:
        self.ptr = lc.llama_model_get_vocab(model)
        self.n_tokens = int(lc.llama_vocab_n_tokens(self.ptr))
        self.bos = int(lc.llama_vocab_bos(self.ptr))
        self._adds_bos = bool(lc.llama_vocab_get_add_bos(self.ptr))
        self._pieces: dict[int, bytes] = {}

    def tokenize(self, text: str, add_special: bool) -> list[int]:
        data = text.encode("utf-8")
        capacity = len(data) + 8
        while True:
            out = (lc.llama_token * capacity)()
            # parse_special: rendered chat templates carry control tokens such as <|im_start|>.
            n = lc.llama_tokenize(
                self.ptr, data, len(data), out, capacity, add_special, True
            )
            if n >= 0:
                tokens = list(out[:n])
                break
            capacity = -n
        # A chat template that writes {{ bos_token }} itself (Llama 3, Gemma, Mistral) already put
        # a BOS in the text: the one add_special puts before it would be a second.
        if add_special and self._adds_bos and tokens[:2] == [self.bos, self.bos]:
            del tokens[0]
        return tokens

    def piece(self, token: int) -> bytes:
        """The bytes of one token as it appears in generated text (control tokens render empty)."""
        cached = self._pieces.get(token)
        if cached is not None:
            return cached
        size = 32
        while True:
            buf = ctypes.create_string_buffer(size)
            n = lc.llama_token_to_piece(self.ptr, token, buf, size, 0, False)
            if n >= 0:
                value = buf.raw[:n]
                self._pieces[token] = value
                return value
            size = -n

    def detokenize(self, tokens: Sequence[int]) -> str:
        ids = (lc.llama_token * len(tokens))(*tokens)
        size = max(16, len(tokens) * 8)
        while True:
            buf = ctypes.create_string_buffer(size)
            n = lc.llama_detokenize(self.ptr, ids, len(tokens), buf, size, False, False)
            if n >= 0:
                return buf.raw[:n].decode("utf-8", errors="replace")
            size = -n

    def is_eog(self, token: int) -> bool:
        return bool(lc.llama_vocab_is_eog(self.ptr, token))
