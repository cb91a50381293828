"""Conversations that keep their KV: the slot a prompt goes to, and the host-RAM prompt cache."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from llmd.runner.engine import Engine
from llmd.runner.promptcache import common_prefix
from llmd.runner.request import (
    Completed,
    CompletionRequest,
    LoadOptions,
    SamplingOptions,
)
from runner import drive

pytestmark = pytest.mark.model

GREEDY = SamplingOptions(temperature=0, num_predict=4)
CACHE = 64 * 2**20


def chat(system: str, *turns: tuple[str, str | None]) -> str:
    text = f"<|im_start|>system\n{system}<|im_end|>\n"
    for user, answer in turns:
        text += f"<|im_start|>user\n{user}<|im_end|>\n"
        if answer is not None:
            text += f"<|im_start|>assistant\n{answer}<|im_end|>\n"
    return text + "<|im_start|>assistant\n"


def system(name: str) -> str:
    return (
        f"You are the assistant of {name}. {name} asks short questions and wants short answers, "
        f"so answer {name} in one sentence, without a greeting and without asking anything back."
    )


def complete(engine: Engine, job: int, prompt: str) -> tuple[str, Completed]:
    return drive.complete(engine, CompletionRequest(prompt, GREEDY), job)


def engine(gguf_path: Path, parallel: int, cache: int) -> Engine:
    return Engine(
        gguf_path, LoadOptions(num_ctx=512, num_parallel=parallel, prompt_cache=cache), threads=2
    )


def test_each_user_keeps_their_own_slot_although_all_prompts_share_template_tokens(
    gguf_path: Path,
) -> None:
    users = ["Ada", "Bo", "Cy", "Di"]
    e = engine(gguf_path, 4, cache=0)  # no prompt cache: the slot choice alone keeps them warm
    try:
        first = {u: chat(system(u), ("What is two plus two?", None)) for u in users}
        answers = {u: complete(e, i, first[u])[0] for i, u in enumerate(users)}
        for i, u in enumerate(users):
            prompt = chat(system(u), ("What is two plus two?", answers[u]), ("And three?", None))
            _, done = complete(e, 10 + i, prompt)
            assert done.prompt_cached >= len(e.vocab.tokenize(first[u], True))
            assert done.prompt_eval_count + done.prompt_cached == len(e.vocab.tokenize(prompt, True))
    finally:
        e.close()


def test_a_conversation_that_lost_its_slot_resumes_from_the_prompt_cache(gguf_path: Path) -> None:
    a1 = chat(system("Ada"), ("Name a colour.", None))
    b1 = chat(system("Bo"), ("Name a fruit.", None))
    fresh = engine(gguf_path, 1, cache=0)
    cached = engine(gguf_path, 1, cache=CACHE)
    try:
        results = []
        for e in (fresh, cached):
            answer, _ = complete(e, 1, a1)
            complete(e, 2, b1)  # takes the only slot from Ada's conversation
            a2 = chat(system("Ada"), ("Name a colour.", answer), ("Another one?", None))
            results.append((a2, complete(e, 3, a2)))
        (a2, (expected, without)), (_, (text, done)) = results
        assert text == expected
        assert without.prompt_cached < 20  # only the template tokens the two chats share
        assert done.prompt_cached >= len(cached.vocab.tokenize(a1, True))
        assert done.prompt_eval_count + done.prompt_cached == len(cached.vocab.tokenize(a2, True))
    finally:
        fresh.close()
        cached.close()


def test_a_prompt_never_gets_the_saved_state_of_another_conversation(gguf_path: Path) -> None:
    shared = system("the team")
    secret = chat(shared, ("Remember this: the password is SWORDFISH.", "I will remember it."),
                  ("Thanks.", None))
    other = chat(shared, ("What is the password?", None))
    fresh = engine(gguf_path, 1, cache=0)
    cached = engine(gguf_path, 1, cache=CACHE)
    try:
        expected, _ = complete(fresh, 1, other)
        complete(cached, 1, secret)
        complete(cached, 2, chat(system("Bo"), ("Hello.", None)))  # the secret goes to the cache
        assert len(cached._cache) == 1
        text, done = complete(cached, 3, other)
        assert text == expected and "SWORDFISH" not in text
        shared_tokens = common_prefix(
            cached.vocab.tokenize(secret, True), cached.vocab.tokenize(other, True)
        )
        assert done.prompt_cached <= shared_tokens
    finally:
        fresh.close()
        cached.close()


def test_a_failed_restore_falls_back_to_evaluating_and_is_logged_once(
    gguf_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    e = engine(gguf_path, 1, cache=CACHE)
    try:
        turns = {}
        for job, name in enumerate(("Ada", "Bo", "Cy")):
            turns[name] = complete(e, job, chat(system(name), ("Name a colour.", None)))[0]
        for entry in e._cache._entries.values():
            # what a state from another build or context looks like: cut short
            del entry.data[len(entry.data) // 2 :]
        with caplog.at_level(logging.WARNING, logger="llmd.runner.promptcache"):
            for job, name in enumerate(("Ada", "Bo"), start=10):
                prompt = chat(system(name), ("Name a colour.", turns[name]), ("Another?", None))
                text, done = complete(e, job, prompt)
                assert text
                assert done.prompt_eval_count + done.prompt_cached == len(
                    e.vocab.tokenize(prompt, True)
                )
                assert done.prompt_cached < 20
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "could not be restored" in warnings[0].getMessage()
    finally:
        e.close()
