"""Prompt rendering with Ollama's precedence and its rules for each kind of template.

A Modelfile ``TEMPLATE`` (Go) wins, then the GGUF's Jinja ``tokenizer.chat_template``, then
Ollama's default ``{{ .Prompt }}``. Go templates run as Ollama's template.Execute does: over
``.Messages`` when the template uses them, otherwise turn by turn (the legacy
``.System``/``.Prompt``/``.Response`` form), the last turn cut after ``.Response``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from llmd.errors import UnsupportedCapability
from llmd.templates.gotemplate import GoTemplate, compile_go
from llmd.templates.govars import collate, message_value, tools_value
from llmd.templates.jinja import render_jinja
from llmd.templates.messages import ChatMessage

DEFAULT_TEMPLATE = "{{ .Prompt }}"  # Ollama's template.DefaultTemplate


def _think_values(think: bool | None) -> dict[str, object]:
    return {"Think": bool(think), "ThinkLevel": "", "IsThinkSet": think is not None}


def render_go(
    template: GoTemplate,
    messages: Sequence[ChatMessage],
    tools: Sequence[Mapping[str, object]] = (),
    think: bool | None = None,
) -> str:
    system, turns = collate(messages)
    if template.uses("messages"):
        return template.execute(
            {
                "System": system,
                "Messages": [message_value(m) for m in turns],
                "Tools": tools_value(tools),
                "Response": "",
                **_think_values(think),
            }
        )
    # Legacy templates render one exchange at a time: each user prompt with the reply to it.
    out: list[str] = []
    values = {"System": "", "Prompt": "", "Response": ""}

    def emit() -> None:
        out.append(template.execute({**values, **_think_values(think)}))
        values.update(System="", Prompt="", Response="")

    for m in turns:
        if m.role == "system":
            if values["Prompt"] or values["Response"]:
                emit()
            values["System"] = m.content
        elif m.role == "user":
            if values["Response"]:
                emit()
            values["Prompt"] = m.content
        elif m.role == "assistant":
            values["Response"] = m.content
    out.append(template.execute_until_response({**values, **_think_values(think)}))
    return "".join(out)


def render_chat(
    *,
    go_template: str | None,
    jinja_template: str | None,
    messages: Sequence[ChatMessage],
    tools: Sequence[Mapping[str, object]] = (),
    bos_token: str = "",
    eos_token: str = "",
    think: bool | None = None,
    add_generation_prompt: bool = True,
) -> str:
    """The prompt for a conversation. Go templates always end ready for the assistant's turn."""
    if go_template:
        return render_go(compile_go(go_template), messages, tools, think)
    if jinja_template:
        return render_jinja(
            jinja_template,
            messages,
            tools=tools,
            bos_token=bos_token,
            eos_token=eos_token,
            add_generation_prompt=add_generation_prompt,
            think=think,
        )
    return render_go(compile_go(DEFAULT_TEMPLATE), messages, tools, think)


def render_generate(
    *,
    go_template: str | None,
    jinja_template: str | None,
    prompt: str,
    system: str | None,
    suffix: str | None,
    bos_token: str = "",
    eos_token: str = "",
    think: bool | None = None,
) -> str:
    """/api/generate's templated prompt: fill-in-the-middle with a suffix, else one user turn."""
    if suffix and prompt:
        template = compile_go(go_template) if go_template else None
        if template is None or not template.uses("suffix"):
            raise UnsupportedCapability("the model's template does not support insert")
        return template.execute(
            {"Prompt": prompt, "Suffix": suffix, "Response": "", **_think_values(think)}
        )
    messages = [ChatMessage("system", system)] if system else []
    messages.append(ChatMessage("user", prompt))
    return render_chat(
        go_template=go_template,
        jinja_template=jinja_template,
        messages=messages,
        bos_token=bos_token,
        eos_token=eos_token,
        think=think,
    )


def template_supports(go_template: str | None, jinja_template: str | None) -> set[str]:
    """What the template that would be used can express: "tools", "insert", "thinking"."""
    found: set[str] = set()
    if go_template:
        template = compile_go(go_template)
        for name, var in (
            ("tools", "tools"),
            ("insert", "suffix"),
            ("thinking", "think"),
            ("thinking", "thinking"),
        ):
            if template.uses(var):
                found.add(name)
    elif jinja_template:
        if "tools" in jinja_template:
            found.add("tools")
        if any(
            k in jinja_template
            for k in ("enable_thinking", "reasoning_content", "<think>")
        ):
            found.add("thinking")
    return found
