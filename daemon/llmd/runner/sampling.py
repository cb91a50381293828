"""A llama.cpp sampler chain per slot, built from SamplingOptions.

Sampling runs in C (llama_sampler_sample on the context's logits), never over Python lists:
the chain order follows llama.cpp's common defaults (penalties, top-k, typical, top-p, min-p,
temperature, then a seeded draw), with the grammar first so that only grammatical tokens compete.
"""

from __future__ import annotations

import ctypes

import llama_cpp as lc

from llmd.errors import InvalidRequest
from llmd.runner.request import SamplingOptions

# llama.cpp's LLAMA_DEFAULT_SEED: the dist sampler then draws a random seed itself.
_RANDOM_SEED = 0xFFFFFFFF


class SamplerChain:
    """Owns one llama_sampler chain; free() releases it (and every sampler added to it)."""

    def __init__(
        self, vocab: ctypes.c_void_p, n_vocab: int, options: SamplingOptions
    ) -> None:
        params = lc.llama_sampler_chain_default_params()
        params.no_perf = True
        self._chain = lc.llama_sampler_chain_init(params)
        try:
            if options.grammar:
                grammar = lc.llama_sampler_init_grammar(
                    vocab, options.grammar.encode("utf-8"), b"root"
                )
                if not grammar:
                    raise InvalidRequest("invalid grammar: the GBNF does not parse")
                self._add(grammar)
            self._add_chain(n_vocab, options)
        except BaseException:
            self.free()
            raise

    def _add(self, sampler: ctypes.c_void_p) -> None:
        lc.llama_sampler_chain_add(self._chain, sampler)

    def _add_chain(self, n_vocab: int, o: SamplingOptions) -> None:
        penalize = o.repeat_last_n != 0 and (
            o.repeat_penalty != 1.0
            or o.frequency_penalty != 0.0
            or o.presence_penalty != 0.0
        )
        if penalize:
            # Ollama: repeat_last_n -1 means the whole context
            last_n = o.repeat_last_n if o.repeat_last_n > 0 else n_vocab
            self._add(
                lc.llama_sampler_init_penalties(
                    n_vocab,
                    last_n,
                    o.repeat_penalty if o.repeat_penalty > 0 else 1.0,
                    o.frequency_penalty,
                    o.presence_penalty,
                )
            )
        if o.temperature <= 0:
            self._add(lc.llama_sampler_init_greedy())
            return
        if o.top_k > 0:
            self._add(lc.llama_sampler_init_top_k(o.top_k))
        if 0 < o.typical_p < 1:
            self._add(lc.llama_sampler_init_typical(o.typical_p, 1))
        if 0 < o.top_p < 1:
            self._add(lc.llama_sampler_init_top_p(o.top_p, 1))
        if o.min_p > 0:
            self._add(lc.llama_sampler_init_min_p(o.min_p, 1))
        self._add(lc.llama_sampler_init_temp(o.temperature))
        seed = o.seed & 0xFFFFFFFF if o.seed >= 0 else _RANDOM_SEED
        self._add(lc.llama_sampler_init_dist(seed))

    def sample(self, ctx: ctypes.c_void_p, index: int) -> int:
        """Sample from the logits of batch output ``index`` and accept the token into the chain."""
        return int(lc.llama_sampler_sample(self._chain, ctx, index))

    def free(self) -> None:
        if self._chain:
            lc.llama_sampler_free(self._chain)
            self._chain = None
