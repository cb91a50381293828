"""/api/generate's templated prompt and the default template."""

from __future__ import annotations

import pytest
from llmd.errors import UnsupportedCapability
from llmd.templates import ChatMessage, render_chat, render_generate

FIM = "{{- if .Suffix }}<PRE> {{ .Prompt }} <SUF>{{ .Suffix }} <MID>{{- else }}{{ .Prompt }}{{- end }}"


def test_a_suffix_fills_in_the_middle_with_prompt_and_suffix() -> None:
    prompt = render_generate(
        go_template=FIM,
        jinja_template=None,
        prompt="def add(",
        system=None,
        suffix="return x",
    )
    assert prompt == "<PRE> def add( <SUF>return x <MID>"


def test_without_a_suffix_the_prompt_is_one_user_turn() -> None:
    assert (
        render_generate(
            go_template=FIM,
            jinja_template=None,
            prompt="hello",
            system=None,
            suffix=None,
        )
        == "hello"
    )


def test_a_suffix_on_a_template_without_insert_is_refused() -> None:
    with pytest.raises(UnsupportedCapability):
        render_generate(
            go_template="{{ .Prompt }}",
            jinja_template=None,
            prompt="a",
            system=None,
            suffix="b",
        )


def test_the_default_template_concatenates_prompts_and_replies_like_ollama() -> None:
    messages = [
        ChatMessage("system", "ignored by {{ .Prompt }}"),
        ChatMessage("user", "one "),
        ChatMessage("assistant", "two "),
        ChatMessage("user", "three"),
    ]
    assert (
        render_chat(go_template=None, jinja_template=None, messages=messages)
        == "one two three"
    )


def test_think_reaches_the_template() -> None:
    template = "{{ if .IsThinkSet }}{{ if .Think }}<think on>{{ else }}<think off>{{ end }}{{ end }}{{ .Prompt }}"
    for think, expected in (
        (True, "<think on>hi"),
        (False, "<think off>hi"),
        (None, "hi"),
    ):
        prompt = render_chat(
            go_template=template,
            jinja_template=None,
            messages=[ChatMessage("user", "hi")],
            think=think,
        )
        assert prompt == expected
