"""Driving an in-process Engine to the end of one request, for the engine tests."""

from __future__ import annotations

from llmd.runner.engine import Engine
from llmd.runner.request import Completed, CompletionRequest, TextDelta


def complete(engine: Engine, request: CompletionRequest, job: int = 1) -> tuple[str, Completed]:
    """Submit ``request`` as ``job`` and step until the engine is idle: its text and Completed."""
    engine.submit(job, request)
    text, done = "", None
    while engine.busy:
        for _, event in engine.step():
            if isinstance(event, TextDelta):
                text += event.text
            else:
                done = event
    assert done is not None
    return text, done
