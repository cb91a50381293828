"""The configured caps on what one request may ask for, checked where requests come in.

The API routes and the D-Bus object call these right after parsing, so a value beyond a cap is a
400 naming the field, before any model is touched. The caps bound what a single client can make
the daemon spend: ``num_ctx`` (KV memory), ``num_predict`` (time), ``keep_alive`` (an expiry a
datetime can hold), the message count (prompt rendering and truncation passes) and stop strings
(text scanned per generated token). The body size itself is ``api/limits.py``'s.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from llmd.config import Config, format_duration
from llmd.errors import LimitExceeded
from llmd.inference.values import ChatRequest, EmbedRequest, GenerateRequest
from llmd.runner.options import coerce_option


def check_keep_alive(seconds: float | None, config: Config) -> None:
    if seconds is None or math.isinf(seconds) or seconds <= config.max_keep_alive:
        return
    raise LimitExceeded(
        f"keep_alive must be at most {format_duration(config.max_keep_alive)} "
        "(or negative, to keep the model loaded forever)"
    )


def _at_most(field: str, value: int, limit: int) -> None:
    if value > limit:
        raise LimitExceeded(f"{field} must be at most {limit}, got {value}")


def check_options(
    options: Mapping[str, object], config: Config, names: Mapping[str, str] | None = None
) -> None:
    """``num_ctx``, ``num_predict`` and ``stop`` of a request's options; ``names`` renames a
    field in messages for APIs that spell it differently (OpenAI's ``max_tokens``)."""
    names = names or {}
    for key, limit in (("num_ctx", config.max_num_ctx), ("num_predict", config.max_num_predict)):
        if options.get(key) is not None:
            value = coerce_option(key, options[key])
            assert isinstance(value, int)
            _at_most(names.get(key, key), value, limit)
    if options.get("stop") is not None:
        stops = coerce_option("stop", options["stop"])
        assert isinstance(stops, list)
        field = names.get("stop", "stop")
        if len(stops) > config.max_stop:
            raise LimitExceeded(f"{field} must hold at most {config.max_stop} strings, got {len(stops)}")
        longest = max((len(s) for s in stops), default=0)
        if longest > config.max_stop_length:
            raise LimitExceeded(
                f"each {field} string must be at most {config.max_stop_length} characters, "
                f"got {longest}"
            )


def check_generation(
    req: GenerateRequest | ChatRequest, config: Config, names: Mapping[str, str] | None = None
) -> None:
    check_keep_alive(req.params.keep_alive, config)
    check_options(req.params.options, config, names)
    if isinstance(req, ChatRequest):
        _at_most("the number of messages", len(req.messages), config.max_messages)


def check_embed(req: EmbedRequest, config: Config) -> None:
    check_keep_alive(req.keep_alive, config)
    check_options(req.options, config)
