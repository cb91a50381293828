"""The GGUF's Jinja chat template, rendered as Hugging Face renders it, in the sandbox."""

from __future__ import annotations

from pathlib import Path

import pytest
from gguf import GGUFReader
from llmd.errors import TemplateError
from llmd.templates import (
    ChatMessage,
    ToolCall,
    render_chat,
    render_generate,
    template_supports,
)
from templates.library import WEATHER_TOOL

SMOL_SYSTEM = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"

# A Llama-3.1-style Hugging Face template: tools in the first user turn, calls as JSON, ipython results.
LLAMA3_JINJA = """{{- bos_token }}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}
{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" }}
{{- "Today Date: " + strftime_now("%d %b %Y") + "\\n\\n" if false else "" }}
{{- system_message }}
{{- "<|eot_id|>" }}
{%- if tools is not none %}
    {%- set first_user_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
    {{- '<|start_header_id|>user<|end_header_id|>\\n\\n' -}}
    {{- "Given the following functions, respond with a JSON for a function call.\\n\\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\\n\\n" }}
    {%- endfor %}
    {{- first_user_message + "<|eot_id|>"}}
{%- endif %}
{%- for message in messages %}
    {%- if message.role == 'tool' %}
        {{- "<|start_header_id|>ipython<|end_header_id|>\\n\\n" + message.content + "<|eot_id|>" }}
    {%- elif 'tool_calls' in message %}
        {%- if not message.tool_calls|length == 1 %}
            {{- raise_exception("This model only supports single tool-calls at once!") }}
        {%- endif %}
        {%- set tool_call = message.tool_calls[0].function %}
        {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}
        {{- '{"name": "' + tool_call.name + '", "parameters": ' + tool_call.arguments | tojson + "}" }}
        {{- "<|eot_id|>" }}
    {%- else %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}
{%- endif %}
"""


@pytest.fixture(scope="module")
def smol_template(gguf_path: Path) -> str:
    field = GGUFReader(gguf_path).fields["tokenizer.chat_template"]
    text = field.contents()
    assert isinstance(text, str)
    return text


def test_smollm2_template_adds_its_default_system_prompt(smol_template: str) -> None:
    prompt = render_chat(
        go_template=None,
        jinja_template=smol_template,
        messages=[ChatMessage("user", "Hi")],
    )
    assert (
        prompt
        == SMOL_SYSTEM + "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )


def test_smollm2_template_with_a_system_message_and_history(smol_template: str) -> None:
    messages = [
        ChatMessage("system", "Be brief."),
        ChatMessage("user", "Hi"),
        ChatMessage("assistant", "Hello!"),
        ChatMessage("user", "Bye"),
    ]
    prompt = render_chat(
        go_template=None, jinja_template=smol_template, messages=messages
    )
    assert prompt == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n"
    )


def test_smollm2_template_without_the_generation_prompt(smol_template: str) -> None:
    prompt = render_chat(
        go_template=None,
        jinja_template=smol_template,
        messages=[ChatMessage("user", "Hi")],
        add_generation_prompt=False,
    )
    assert prompt == SMOL_SYSTEM + "<|im_start|>user\nHi<|im_end|>\n"


def test_a_modelfile_template_wins_over_the_gguf_template(smol_template: str) -> None:
    prompt = render_chat(
        go_template="U:{{ .Prompt }}",
        jinja_template=smol_template,
        messages=[ChatMessage("user", "Hi")],
    )
    assert prompt == "U:Hi"


def test_generate_renders_system_and_prompt_through_the_gguf_template(
    smol_template: str,
) -> None:
    prompt = render_generate(
        go_template=None,
        jinja_template=smol_template,
        prompt="Hi",
        system="Be brief.",
        suffix=None,
    )
    assert (
        prompt
        == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )


def test_llama3_jinja_template_renders_tools_calls_and_results() -> None:
    messages = [
        ChatMessage("system", "Be brief."),
        ChatMessage("user", "Weather in Paris?"),
        ChatMessage(
            "assistant", "", tool_calls=(ToolCall("get_weather", {"city": "Paris"}),)
        ),
        ChatMessage("tool", "12C", tool_name="get_weather"),
    ]
    prompt = render_chat(
        go_template=None,
        jinja_template=LLAMA3_JINJA,
        messages=messages,
        tools=[WEATHER_TOOL],
        bos_token="<|begin_of_text|>",
    )
    tool_json = (
        '{\n    "type": "function",\n    "function": {\n        "name": "get_weather",\n'
        '        "description": "Get the current weather",\n        "parameters": {\n'
        '            "type": "object",\n            "required": [\n                "city"\n            ],\n'
        '            "properties": {\n                "city": {\n                    "type": "string",\n'
        '                    "description": "The city"\n                }\n            }\n        }\n    }\n}'
    )
    assert prompt == (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\n"
        "Given the following functions, respond with a JSON for a function call.\n\n"
        + tool_json
        + "\n\nWeather in Paris?<|eot_id|>"
        '<|start_header_id|>assistant<|end_header_id|>\n\n{"name": "get_weather", "parameters": {"city": "Paris"}}'
        "<|eot_id|><|start_header_id|>ipython<|end_header_id|>\n\n12C<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )
    assert template_supports(None, LLAMA3_JINJA) == {"tools"}


def test_raise_exception_in_a_template_is_a_template_error() -> None:
    two_calls = (ToolCall("a", {}), ToolCall("b", {}))
    with pytest.raises(
        TemplateError,
        match="^template error: This model only supports single tool-calls",
    ):
        render_chat(
            go_template=None,
            jinja_template=LLAMA3_JINJA,
            tools=[WEATHER_TOOL],
            messages=[
                ChatMessage("user", "x"),
                ChatMessage("assistant", "", tool_calls=two_calls),
            ],
        )


def test_a_jinja_syntax_error_is_a_template_error() -> None:
    with pytest.raises(TemplateError, match="^template error: line 1: "):
        render_chat(
            go_template=None,
            jinja_template="{% for m in messages %}",
            messages=[ChatMessage("user", "x")],
        )


def test_the_sandbox_refuses_to_touch_python_internals() -> None:
    with pytest.raises(TemplateError, match="^template error: "):
        render_chat(
            go_template=None,
            jinja_template="{{ messages.__class__.__subclasses__() }}",
            messages=[ChatMessage("user", "x")],
        )
    with pytest.raises(TemplateError, match="^template error: "):
        render_chat(
            go_template=None,
            jinja_template="{{ messages.append(1) }}",
            messages=[ChatMessage("user", "x")],
        )


def test_loop_controls_and_strftime_now_are_available() -> None:
    text = (
        "{% for m in messages %}{% if loop.index > 1 %}{% break %}{% endif %}{{ m.content }}{% endfor %}"
        "{{ strftime_now('%Y') | length }}"
    )
    prompt = render_chat(
        go_template=None,
        jinja_template=text,
        messages=[ChatMessage("user", "a"), ChatMessage("user", "b")],
    )
    assert prompt == "a4"
