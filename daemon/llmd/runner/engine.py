"""The llama.cpp model, its one shared context, and continuous batching over parallel slots.

This module does no I/O: ``runner/__main__.py`` feeds it requests and ships the events that
``step()`` returns. One ``step()`` is one ``llama_decode``: a token for every generating slot plus
prompt chunks of newly admitted requests, up to ``num_batch`` tokens in all, so a new request starts
its prompt while the others keep generating.

A request goes to the slot whose conversation its prompt continues, else to an empty slot, else
to the one used least recently; the KV cells the chosen slot would lose are saved to the prompt
cache first (``runner/promptcache.py``), and restored when a later prompt continues them. A
sequence that fills its context drops the older half of what follows its first ``num_keep``
tokens and goes on (a context shift), unless the request asked for ``shift: false``.
"""

from __future__ import annotations

import ctypes
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import llama_cpp as lc

from llmd.errors import InvalidRequest, RunnerError, RunnerLoadFailed
from llmd.runner.adapters import Adapters
from llmd.runner.embedding import Embedder
from llmd.runner.promptcache import MIN_TOKENS, PromptCache, common_prefix
from llmd.runner.request import (
    Completed,
    CompletionRequest,
    LoadOptions,
    TextDelta,
    TokenLogprob,
)
from llmd.runner.sampling import SamplerChain
from llmd.runner.textstream import TextStream
from llmd.runner.vocab import Vocab

Event = tuple[int, TextDelta | Completed]

_GGML_LIB = Path(lc.__file__).parent / "lib"
_KV_TYPES = {"f16": lc.GGML_TYPE_F16, "q8_0": lc.GGML_TYPE_Q8_0, "q4_0": lc.GGML_TYPE_Q4_0}
_FLASH = {
    None: lc.LLAMA_FLASH_ATTN_TYPE_AUTO,
    True: lc.LLAMA_FLASH_ATTN_TYPE_ENABLED,
    False: lc.LLAMA_FLASH_ATTN_TYPE_DISABLED,
}


def _register_backends() -> None:
    """Load ggml's backend modules when llama.cpp was built with GGML_BACKEND_DL.

    The packaged build (debian/, rpm/) compiles the CPU backend once per x86-64 feature level so
    that one package runs on any CPU. ggml registers such modules only when asked, and by default
    looks beside the executable (here the Python interpreter), so it is given their directory.
    """
    ggml = ctypes.CDLL(str(_GGML_LIB / "libggml.so"))
    if ggml.ggml_backend_dev_count() == 0:
        ggml.ggml_backend_load_all_from_path(str(_GGML_LIB).encode())


@dataclass
class _Job:
    id: int
    request: CompletionRequest
    prompt: list[int]
    pending: list[int]
    sampler: SamplerChain
    text: TextStream
    admitted_ns: int
    output: list[int] = field(default_factory=list)
    next_token: int | None = None
    first_token_ns: int = 0
    prompt_tokens_done: bool = False
    cached: int = 0  # prompt tokens whose KV was already there: not evaluated


@dataclass
class _Slot:
    seq: int
    cached: list[int] = field(
        default_factory=list
    )  # tokens whose KV this sequence holds
    job: _Job | None = None
    key: int = 0  # the length of the prompt that filled it: a prompt repeating it continues it
    used: int = 0  # when it was last handed a request, for least-recently-used reassignment
    exact: int | None = None  # after a context shift, the cells left as evaluating would give


class Engine:
    """A loaded model with ``num_parallel`` slots over one context of ``num_ctx × num_parallel``."""

    def __init__(self, path: Path, load: LoadOptions, threads: int) -> None:
        _register_backends()
        self.load = load
        self._threads = threads
        mparams = lc.llama_model_default_params()
        if load.use_mmap is not None:
            mparams.use_mmap = load.use_mmap
        if load.num_gpu >= 0:
            mparams.n_gpu_layers = load.num_gpu
        mparams.main_gpu = load.main_gpu
        if not path.is_file():
            raise RunnerLoadFailed(f"unable to load model: {path}: no such file")
        self._model = lc.llama_model_load_from_file(str(path).encode(), mparams)
        if not self._model:
            raise RunnerLoadFailed(f"unable to load model: {path}")
        self.vocab = Vocab(self._model)
        self.n_ctx_train = int(lc.llama_model_n_ctx_train(self._model))
        self.n_embd = int(lc.llama_model_n_embd(self._model))
        self._ctx: ctypes.c_void_p | None = None
        self._embedder: Embedder | None = None
        self._slots: list[_Slot] = []
        self._waiting: deque[_Job] = deque()
        try:
            self._adapters = Adapters(self._model, [Path(p) for p in load.adapters])
        except RunnerLoadFailed:
            self.close()
            raise
        if load.embedding:
            self.embedder  # noqa: B018 - made now, so that a load fails when it cannot be
            self.n_ctx_seq = load.num_ctx
            return
        n_parallel = max(1, load.num_parallel)
        cparams = lc.llama_context_default_params()
        cparams.n_ctx = load.num_ctx * n_parallel
        cparams.n_batch = max(load.num_batch, n_parallel)
        cparams.n_ubatch = min(cparams.n_batch, 512)
        cparams.n_seq_max = n_parallel
        cparams.n_threads = cparams.n_threads_batch = threads
        cparams.no_perf = True
        cparams.type_k = cparams.type_v = _KV_TYPES[load.kv_cache_type]
        cparams.flash_attn_type = _FLASH[load.flash_attention]
        # One KV stream per sequence: each slot gets exactly num_ctx cells, as Ollama promises, and
        # attention only spans its own cells (a unified cache measured 2x slower for one sequence).
        cparams.kv_unified = False
        self._ctx = lc.llama_init_from_model(self._model, cparams)
        if not self._ctx:
            self.close()
            raise RunnerLoadFailed(
                f"unable to create a context of {load.num_ctx * n_parallel} tokens for {path}"
            )
        self._adapters.apply(self._ctx)
        self._mem = lc.llama_get_memory(self._ctx)
        self.n_ctx_seq = int(lc.llama_n_ctx_seq(self._ctx))
        self._n_batch = int(lc.llama_n_batch(self._ctx))
        self._batch = lc.llama_batch_init(self._n_batch, 0, 1)
        self._slots = [_Slot(seq) for seq in range(n_parallel)]
        self._cache = PromptCache(load.prompt_cache)
        self._ticks = 0

    # --- requests ------------------------------------------------------------------------------

    @property
    def kv_cells_used(self) -> int:
        return sum(len(s.cached) for s in self._slots)

    @property
    def busy(self) -> bool:
        return bool(self._waiting) or any(s.job is not None for s in self._slots)

    def submit(self, job_id: int, request: CompletionRequest) -> None:
        """Admit a completion; raises InvalidRequest when it cannot run at all."""
        if self._ctx is None:
            raise InvalidRequest("this model does not support generate")
        tokens = list(request.context) + self.vocab.tokenize(
            request.prompt, request.add_special
        )
        if not tokens:
            tokens = [self.vocab.bos] if self.vocab.bos >= 0 else []
        if not tokens:
            raise InvalidRequest("the prompt is empty")
        # llama_decode refuses a batch holding an id outside the vocabulary, and with it every
        # request in that batch: refuse the one request here instead (Ollama's runner checks too).
        bad = next((t for t in request.context if not 0 <= t < self.vocab.n_tokens), None)
        if bad is not None:
            raise InvalidRequest(
                f"invalid token id {bad} in context: the vocabulary has {self.vocab.n_tokens} tokens"
            )
        tokens = self._fit(tokens, request)
        job = _Job(
            id=job_id,
            request=request,
            prompt=tokens,
            pending=[],
            sampler=SamplerChain(self.vocab.ptr, self.vocab.n_tokens, request.sampling),
            text=TextStream(request.sampling.stop),
            admitted_ns=time.perf_counter_ns(),
        )
        self._waiting.append(job)
        self._admit()

    def _fit(self, tokens: list[int], request: CompletionRequest) -> list[int]:
        limit = self.n_ctx_seq - 1  # room for at least one generated token
        if len(tokens) <= limit:
            return tokens
        if not request.truncate:
            raise InvalidRequest("the input length exceeds the context length")
        # Ollama keeps the first num_keep tokens and drops the oldest of the rest; the answer gets
        # num_predict tokens of room (a quarter of the context when unset), at most half of it.
        keep = max(0, min(request.sampling.num_keep, limit // 2))
        predict = request.sampling.num_predict
        answer = min(predict if predict > 0 else self.n_ctx_seq // 4, limit // 2)
        room = max(1, limit - keep - answer)
        return tokens[:keep] + tokens[len(tokens) - room :]

    def cancel(self, job_id: int) -> bool:
        for job in list(self._waiting):
            if job.id == job_id:
                self._waiting.remove(job)
                job.sampler.free()
                return True
        for slot in self._slots:
            if slot.job is not None and slot.job.id == job_id:
                self._release(slot)
                self._admit()
                return True
        return False

    def _admit(self) -> None:
        while self._waiting:
            free = [s for s in self._slots if s.job is None]
            if not free:
                return
            job = self._waiting.popleft()
            slot = self._choose(free, job.prompt)
            reuse = self._prefix(slot, job.prompt)
            if reuse == len(job.prompt):
                reuse -= (
                    1  # the last prompt token must be decoded again to get its logits
                )
            if not lc.llama_memory_seq_rm(self._mem, slot.seq, reuse, -1):
                lc.llama_memory_seq_rm(self._mem, slot.seq, -1, -1)
                reuse = 0
            del slot.cached[reuse:]
            job.pending = job.prompt[reuse:]
            job.cached = reuse
            self._ticks += 1
            slot.job, slot.key, slot.used = job, len(job.prompt), self._ticks

    def _choose(self, free: list[_Slot], prompt: list[int]) -> _Slot:
        """The slot whose conversation ``prompt`` continues, else an empty one, else the LRU.

        Every chat prompt opens with the same template tokens, so sharing a prefix is not enough:
        the prompt must repeat all of what the slot was last asked.
        """
        best: tuple[int, _Slot] | None = None
        for slot in free:
            shared = common_prefix(slot.cached, prompt)
            if shared and shared >= min(slot.key, len(slot.cached)):
                if best is None or shared > best[0]:
                    best = (shared, slot)
        if best is not None:
            return best[1]
        empty = [s for s in free if not s.cached]
        if empty:
            return empty[0]
        return min(free, key=lambda s: s.used)

    def _prefix(self, slot: _Slot, prompt: list[int]) -> int:
        """Prepare ``slot`` for ``prompt``: returns how many leading prompt tokens it holds.

        What the slot would lose is saved first; a saved state that covers more of the prompt
        than the slot does is restored in its place.
        """
        reuse = common_prefix(slot.cached, prompt)
        if not self._cache.enabled:
            return reuse
        hit = self._cache.find(prompt)
        if len(slot.cached) - reuse >= MIN_TOKENS:
            self._cache.save(self._ctx, slot.seq, slot.cached, slot.key)
        if hit is None or hit[1] <= reuse:
            return reuse
        entry, usable = hit
        if self._cache.restore(self._ctx, self._mem, slot.seq, entry):
            slot.cached = list(entry.tokens)
            return usable
        slot.cached.clear()
        return 0

    def _release(self, slot: _Slot) -> None:
        if slot.job is not None:
            slot.job.sampler.free()
            slot.job = None
        if slot.exact is not None:
            if not lc.llama_memory_seq_rm(self._mem, slot.seq, slot.exact, -1):
                lc.llama_memory_seq_rm(self._mem, slot.seq, -1, -1)
                slot.exact = 0
            del slot.cached[slot.exact :]
            slot.key = min(slot.key, len(slot.cached))
            slot.exact = None

    # --- one decode step -----------------------------------------------------------------------

    def step(self, only: list[_Slot] | None = None) -> list[Event]:
        """Decode one batch and sample every slot that produced logits.

        ``only`` limits the batch to those slots (the retry of a failed batch, one at a time).
        """
        batch = self._batch
        n = 0
        outputs: list[tuple[_Slot, int]] = []
        undo: dict[int, _Undo] = {}

        def add(slot: _Slot, token: int, logits: bool) -> None:
            nonlocal n
            if slot.seq not in undo:
                undo[slot.seq] = _Undo(slot, len(slot.cached))
            batch.token[n] = token
            batch.pos[n] = len(slot.cached)
            batch.n_seq_id[n] = 1
            batch.seq_id[n][0] = slot.seq
            batch.logits[n] = logits
            slot.cached.append(token)
            if logits:
                outputs.append((slot, n))
            n += 1

        active = [s for s in (only or self._slots) if s.job is not None]
        for slot in active:
            job = slot.job
            assert job is not None
            if job.next_token is not None:
                add(slot, job.next_token, True)
                undo[slot.seq].next_token = job.next_token
                job.next_token = None
        # Prompts fill what is left of the batch, oldest admission first.
        for slot in sorted(active, key=lambda s: s.job.admitted_ns if s.job else 0):
            job = slot.job
            assert job is not None
            if not job.pending or n >= self._n_batch:
                continue
            chunk = job.pending[: self._n_batch - n]
            del job.pending[: len(chunk)]
            if chunk:
                add_undo = undo.setdefault(slot.seq, _Undo(slot, len(slot.cached)))
                add_undo.chunk = chunk
            for i, token in enumerate(chunk):
                add(slot, token, not job.pending and i == len(chunk) - 1)
        if n == 0:
            return []
        batch.n_tokens = n
        rc = lc.llama_decode(self._ctx, batch)
        if rc != 0:
            return self._isolate(list(undo.values()), rc)
        events: list[Event] = []
        for slot, index in outputs:
            events.extend(self._sample(slot, index))
        self._admit()
        return events

    def _sample(self, slot: _Slot, index: int) -> list[Event]:
        job = slot.job
        assert job is not None
        logprobs: tuple[TokenLogprob, ...] = ()
        if job.request.logprobs:
            logprobs_of = self._logprobs(index, job.request.top_logprobs)
        token = job.sampler.sample(self._ctx, index)
        now = time.perf_counter_ns()
        if not job.first_token_ns:
            job.first_token_ns = now
        if self.vocab.is_eog(token):
            return self._finish(slot, "stop")
        job.output.append(token)
        piece = self.vocab.piece(token)
        if job.request.logprobs:
            logprobs = (logprobs_of(token),)
        text = job.text.push(piece)
        events: list[Event] = []
        if text or logprobs:
            events.append((job.id, TextDelta(text, logprobs)))
        options = job.request.sampling
        # Ollama's bound on num_predict -1: ten contexts, so that shifting never runs forever
        limit = options.num_predict if options.num_predict > 0 else 10 * self.n_ctx_seq
        if job.text.stopped:
            events.extend(self._finish(slot, "stop"))
        elif limit <= len(job.output) or (
            len(slot.cached) + 1 >= self.n_ctx_seq and not self._shift(slot)
        ):
            events.extend(self._finish(slot, "length"))
        else:
            job.next_token = token
        return events

    def _shift(self, slot: _Slot) -> bool:
        """Make room in a full sequence: keep its first num_keep tokens (and BOS), drop half of
        the rest, and move the remainder back. False when the request or the model forbids it."""
        job = slot.job
        assert job is not None
        if not job.request.shift or not lc.llama_memory_can_shift(self._mem):
            return False
        n = len(slot.cached)
        bos = 1 if slot.cached and slot.cached[0] == self.vocab.bos else 0
        keep = max(0, min(job.request.sampling.num_keep + bos, n - 2))
        discard = (n - keep) // 2
        if discard < 1 or not lc.llama_memory_seq_rm(self._mem, slot.seq, keep, keep + discard):
            return False
        lc.llama_memory_seq_add(self._mem, slot.seq, keep + discard, n, -discard)
        del slot.cached[keep : keep + discard]
        # The cells after `keep` attended to the dropped tokens: they are not what evaluating
        # these tokens afresh would give, so no other prompt may reuse them.
        slot.exact = keep if slot.exact is None else min(slot.exact, keep)
        return True

    def _logprobs(self, index: int, top: int):  # type: ignore[no-untyped-def]
        import numpy as np  # here, not above: only logprobs and embeddings need it

        pointer = lc.llama_get_logits_ith(self._ctx, index)
        logits = np.ctypeslib.as_array(pointer, shape=(self.vocab.n_tokens,)).astype(
            np.float64
        )
        peak = logits.max()
        logsum = peak + np.log(np.exp(logits - peak).sum())
        values = logits - logsum
        best = np.argsort(-values)[: max(0, min(top, 20))] if top > 0 else []

        def entry(token: int) -> TokenLogprob:
            piece = self.vocab.piece(token)
            return TokenLogprob(
                token=piece.decode("utf-8", errors="replace"),
                logprob=float(values[token]),
                bytes=tuple(piece),
            )

        def of(token: int) -> TokenLogprob:
            chosen = entry(token)
            tops = tuple(entry(int(t)) for t in best)
            return TokenLogprob(chosen.token, chosen.logprob, chosen.bytes, tops)

        return of

    def _finish(self, slot: _Slot, reason: str) -> list[Event]:
        job = slot.job
        assert job is not None
        now = time.perf_counter_ns()
        events: list[Event] = []
        tail = job.text.flush()
        if tail:
            events.append((job.id, TextDelta(tail)))
        first = job.first_token_ns or now
        events.append(
            (
                job.id,
                Completed(
                    done_reason="stop" if reason == "stop" else "length",
                    prompt_eval_count=len(job.prompt) - job.cached,
                    prompt_eval_duration=first - job.admitted_ns,
                    eval_count=len(job.output),
                    eval_duration=now - first,
                    context=tuple(job.prompt + job.output),
                    prompt_cached=job.cached,
                    stop_sequence=job.text.stop,
                ),
            )
        )
        self._release(slot)
        return events

    def _isolate(self, parts: list[_Undo], rc: int) -> list[Event]:
        """A decode error: undo the batch, then decode each slot's share of it alone, so only the
        request whose tokens llama.cpp refuses fails and the others keep their slot and cache."""
        for part in parts:
            part.restore(self._mem)
        error = RunnerError(f"llama_decode failed with status {rc}")
        if len(parts) == 1:
            slot = parts[0].slot
            assert slot.job is not None
            failed = slot.job.id
            self._release(slot)
            self._admit()
            raise StepFailed([failed], error)
        events: list[Event] = []
        lost: list[int] = []
        for part in parts:
            try:
                events.extend(self.step(only=[part.slot]))
            except StepFailed as failure:
                lost.extend(failure.job_ids)
                events.extend(failure.events)
        if lost:
            raise StepFailed(lost, error, events)
        return events

    # --- embeddings (runner/embedding.py) and LoRA adapters ----------------------------------

    @property
    def embedder(self) -> Embedder:
        """The embedding context, made on the first embed of a model that also generates."""
        if self._embedder is None:
            self._embedder = Embedder(self._model, self.vocab, self.n_embd, self.load.num_ctx,
                                      self._threads)
            self._adapters.apply(self._embedder.ctx)
        return self._embedder

    # --- teardown ------------------------------------------------------------------------------

    def close(self) -> None:
        for slot in self._slots:
            self._release(slot)
        for job in self._waiting:
            job.sampler.free()
        self._waiting.clear()
        if self._slots:
            lc.llama_batch_free(self._batch)
            self._slots = []
        if self._embedder is not None:
            self._embedder.close()
            self._embedder = None
        if self._ctx:
            lc.llama_free(self._ctx)
            self._ctx = None
        if self._model:
            lc.llama_model_free(self._model)
            self._model = None


class StepFailed(Exception):
    """A decode step failed for these requests; the runner and the other requests carry on,
    and ``events`` are what the others produced in that step."""

    def __init__(self, job_ids: list[int], error: RunnerError, events: list[Event] | None = None) -> None:
        super().__init__(str(error))
        self.job_ids = job_ids
        self.error = error
        self.events = events or []


@dataclass
class _Undo:
    """How to take one slot's share of a batch back out: its cache length before the batch,
    and the job state the batch consumed."""

    slot: _Slot
    cached: int
    next_token: int | None = None
    chunk: list[int] = field(default_factory=list)

    def restore(self, memory: object) -> None:
        lc.llama_memory_seq_rm(memory, self.slot.seq, self.cached, -1)
        del self.slot.cached[self.cached :]
        job = self.slot.job
        if job is None:
            return
        if self.next_token is not None:
            job.next_token = self.next_token
        job.pending[:0] = self.chunk

