"""The GGUF's own ``tokenizer.chat_template``: Jinja run in jinja2's immutable sandbox.

The variables and helpers are the ones Hugging Face's ``apply_chat_template`` provides, since
that is what these templates are written against: ``messages``, ``tools``, ``bos_token``,
``eos_token``, ``add_generation_prompt``, ``raise_exception``, ``strftime_now``, and a
``tojson`` that takes json.dumps' arguments (jinja2's own escapes HTML and takes only indent).
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import NoReturn

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from llmd.errors import TemplateError
from llmd.templates.messages import ChatMessage


class _Raised(Exception):
    """raise_exception() from inside a template: its message is the template author's."""


def _raise_exception(message: object) -> NoReturn:
    raise _Raised(str(message))


def _strftime_now(fmt: str) -> str:
    return datetime.datetime.now().strftime(fmt)


def _tojson(
    value: object,
    ensure_ascii: bool = False,
    indent: int | str | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    return json.dumps(
        value,
        ensure_ascii=ensure_ascii,
        indent=indent,
        separators=separators,
        sort_keys=sort_keys,
    )


def _environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    return env


_ENV = _environment()


@lru_cache(maxsize=64)
def compile_jinja(source: str) -> jinja2.Template:
    try:
        return _ENV.from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"line {exc.lineno}: {exc.message}") from None


def hf_message(m: ChatMessage) -> dict[str, object]:
    """A message in the shape Hugging Face templates read."""
    out: dict[str, object] = {"role": m.role, "content": m.content}
    if m.thinking:
        out["reasoning_content"] = m.thinking
    if m.tool_calls:
        out["tool_calls"] = [
            {
                **({"id": c.id} if c.id else {}),
                "type": "function",
                "function": {"name": c.name, "arguments": dict(c.arguments)},
            }
            for c in m.tool_calls
        ]
    if m.tool_name:
        out["name"] = m.tool_name
    return out


def _plain(value: object) -> object:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def render_jinja(
    source: str,
    messages: Sequence[ChatMessage],
    *,
    tools: Sequence[Mapping[str, object]] = (),
    bos_token: str = "",
    eos_token: str = "",
    add_generation_prompt: bool = True,
    think: bool | None = None,
) -> str:
    template = compile_jinja(source)
    context: dict[str, object] = {
        "messages": [hf_message(m) for m in messages],
        "tools": [_plain(t) for t in tools]
        or None,  # HF passes None when there are none
        "bos_token": bos_token,
        "eos_token": eos_token,
        "add_generation_prompt": add_generation_prompt,
    }
    if think is not None:
        context["enable_thinking"] = think  # Qwen3-style templates switch on this
    try:
        return template.render(context)
    except _Raised as exc:
        raise TemplateError(str(exc)) from None
    except TemplateError:
        raise
    except Exception as exc:  # noqa: BLE001 - anything a sandboxed template does wrong is its error
        raise TemplateError(f"{type(exc).__name__}: {exc}") from None
