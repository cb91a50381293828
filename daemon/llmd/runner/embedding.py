"""Embeddings: a second llama.cpp context over the loaded model, and the embed requests waiting for it.

An embed is done one input per ``step()``, and the runner runs a decode step of the generating
slots between two of them, so a long list of inputs no longer holds up every generation on the
runner until the last one is done.

Pooling is the model's own: an embedding model's GGUF names it (``<arch>.pooling_type``: mean,
CLS or last token), as llama.cpp reads it; a causal LM that names none has its tokens averaged.
"""

from __future__ import annotations

import ctypes
from collections import deque
from dataclasses import dataclass, field

import llama_cpp as lc

from llmd.errors import InvalidRequest, LlmdError, RunnerError
from llmd.runner.vocab import Vocab

# What llama.cpp can pool into one vector per input; NONE and RANK (rerankers) give none.
_POOLED = (lc.LLAMA_POOLING_TYPE_MEAN, lc.LLAMA_POOLING_TYPE_CLS, lc.LLAMA_POOLING_TYPE_LAST)


def _meta(model: ctypes.c_void_p, key: str) -> str | None:
    buf = ctypes.create_string_buffer(256)
    n = lc.llama_model_meta_val_str(model, key.encode(), buf, len(buf))
    return buf.value.decode("utf-8", "replace") if n >= 0 else None


def declared_pooling(model: ctypes.c_void_p) -> int | None:
    """The pooling type the GGUF names, when it is one that gives a vector per input."""
    arch = _meta(model, "general.architecture") or ""
    value = _meta(model, f"{arch}.pooling_type")
    if value is None or not value.lstrip("-").isdigit():
        return None
    pooling = int(value)
    return pooling if pooling in _POOLED else None


@dataclass
class EmbedJob:
    id: int
    inputs: list[str]
    truncate: bool
    vectors: list[list[float]] = field(default_factory=list)
    count: int = 0


@dataclass(frozen=True, slots=True)
class Finished:
    """A job done: its vectors and token count, or the error that ended it."""

    id: int
    vectors: list[list[float]]
    count: int
    error: LlmdError | None = None


class Embedder:
    def __init__(
        self, model: ctypes.c_void_p, vocab: Vocab, n_embd: int, num_ctx: int, threads: int
    ) -> None:
        self._vocab = vocab
        self._n_embd = n_embd
        self._limit = num_ctx
        self._jobs: deque[EmbedJob] = deque()
        cparams = lc.llama_context_default_params()
        cparams.n_ctx = num_ctx
        # A pooled embedding needs the whole input in one ubatch.
        cparams.n_batch = cparams.n_ubatch = num_ctx
        cparams.n_seq_max = 1
        cparams.n_threads = cparams.n_threads_batch = threads
        cparams.embeddings = True
        pooling = declared_pooling(model)
        # UNSPECIFIED lets llama.cpp take the GGUF's own pooling type.
        cparams.pooling_type = (
            lc.LLAMA_POOLING_TYPE_UNSPECIFIED if pooling is not None else lc.LLAMA_POOLING_TYPE_MEAN
        )
        cparams.no_perf = True
        self.ctx = lc.llama_init_from_model(model, cparams)
        if not self.ctx:
            raise RunnerError("unable to create an embedding context")
        self._batch = lc.llama_batch_init(num_ctx, 0, 1)

    @property
    def busy(self) -> bool:
        return bool(self._jobs)

    def submit(self, job_id: int, inputs: list[str], truncate: bool) -> None:
        self._jobs.append(EmbedJob(job_id, inputs, truncate))

    def cancel(self, job_id: int) -> bool:
        for job in self._jobs:
            if job.id == job_id:
                self._jobs.remove(job)
                return True
        return False

    def step(self) -> list[Finished]:
        """Embed the next input of the oldest job; the job's result once it has them all."""
        if not self._jobs:
            return []
        job = self._jobs[0]
        try:
            if len(job.vectors) < len(job.inputs):
                vector, count = self._embed_one(job.inputs[len(job.vectors)], job.truncate)
                job.vectors.append(vector)
                job.count += count
        except LlmdError as exc:
            self._jobs.popleft()
            return [Finished(job.id, [], 0, exc)]
        if len(job.vectors) < len(job.inputs):
            return []
        self._jobs.popleft()
        return [Finished(job.id, job.vectors, job.count)]

    def _embed_one(self, text: str, truncate: bool) -> tuple[list[float], int]:
        import numpy as np  # here, not above: only embeddings need it

        tokens = self._vocab.tokenize(text, True) or [max(self._vocab.bos, 0)]
        if len(tokens) > self._limit:
            if not truncate:
                raise InvalidRequest("the input length exceeds the context length")
            tokens = tokens[: self._limit]
        lc.llama_memory_clear(lc.llama_get_memory(self.ctx), True)
        batch = self._batch
        for i, token in enumerate(tokens):
            batch.token[i] = token
            batch.pos[i] = i
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = 0
            batch.logits[i] = True
        batch.n_tokens = len(tokens)
        rc = lc.llama_decode(self.ctx, batch)
        if rc != 0:
            raise RunnerError(f"llama_decode failed with status {rc}")
        pointer = lc.llama_get_embeddings_seq(self.ctx, 0)
        if not pointer:
            raise RunnerError("the model returned no pooled embedding")
        vector = np.ctypeslib.as_array(pointer, shape=(self._n_embd,)).astype(np.float64)
        norm = float(np.linalg.norm(vector))
        return (vector / norm if norm > 0 else vector).tolist(), len(tokens)

    def close(self) -> None:
        self._jobs.clear()
        if self.ctx:
            lc.llama_batch_free(self._batch)
            lc.llama_free(self.ctx)
            self.ctx = None
