"""Ollama's library templates render the prompts Ollama renders for them."""

from __future__ import annotations

import pytest
from llmd.templates import ChatMessage, ToolCall, render_chat, template_supports
from templates.library import (
    CHATML_TOOLS,
    GEMMA2_INSTRUCT,
    GEMMA_INSTRUCT,
    LLAMA3_INSTRUCT,
    LLAMA31_TOOLS,
    MISTRAL_TOOLS,
    WEATHER_JSON,
    WEATHER_TOOL,
)

SYSTEM = ChatMessage("system", "You are terse.")
HI = [ChatMessage("user", "Hi")]
HISTORY = [
    SYSTEM,
    ChatMessage("user", "Hi"),
    ChatMessage("assistant", "Hello!"),
    ChatMessage("user", "Weather?"),
]
ASK = [SYSTEM, ChatMessage("user", "Weather in Paris?")]
CALL = ToolCall("get_weather", {"city": "Paris"})
TOOL_TURNS = [
    ChatMessage("user", "Weather in Paris?"),
    ChatMessage("assistant", "", tool_calls=(CALL,)),
    ChatMessage("tool", "12C", tool_name="get_weather"),
]


def render(
    template: str,
    messages: list[ChatMessage],
    tools: list[dict[str, object]] | None = None,
) -> str:
    return render_chat(
        go_template=template, jinja_template=None, messages=messages, tools=tools or ()
    )


CHATML_TOOLS_BLOCK = (
    "\n\n# Tools\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
    '{"type": "function", "function": '
    + WEATHER_JSON[len('{"type":"function","function":') : -1]
    + "}\n"
    "</tools>\n\nFor each function call, return a json object with function name and arguments within "
    '<tool_call></tool_call> XML tags:\n<tool_call>\n{"name": <function-name>, "arguments": '
    "<args-json-object>}\n</tool_call>"
)


@pytest.mark.parametrize(
    ("messages", "tools", "expected"),
    [
        (HI, None, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"),
        (
            [SYSTEM, *HI],
            None,
            (
                "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                "<|im_start|>assistant\n"
            ),
        ),
        (
            HISTORY,
            None,
            (
                "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nWeather?<|im_end|>\n"
                "<|im_start|>assistant\n"
            ),
        ),
        (
            ASK,
            [WEATHER_TOOL],
            "<|im_start|>system\nYou are terse." + CHATML_TOOLS_BLOCK + "<|im_end|>\n"
            "<|im_start|>user\nWeather in Paris?<|im_end|>\n<|im_start|>assistant\n",
        ),
        (
            TOOL_TURNS,
            [WEATHER_TOOL],
            "<|im_start|>system" + CHATML_TOOLS_BLOCK + "<|im_end|>\n"
            "<|im_start|>user\nWeather in Paris?<|im_end|>\n<|im_start|>assistant\n<tool_call>\n"
            '{"name": "get_weather", "arguments": {"city":"Paris"}}\n</tool_call><|im_end|>\n'
            "<|im_start|>user\n<tool_response>\n12C\n</tool_response><|im_end|>\n<|im_start|>assistant\n",
        ),
    ],
    ids=["user", "system", "history", "tools", "tool-call-and-result"],
)
def test_chatml_with_tools_renders_like_ollama(messages, tools, expected) -> None:
    assert render(CHATML_TOOLS, messages, tools) == expected


def test_legacy_llama3_template_renders_each_exchange_and_stops_after_the_open_response() -> (
    None
):
    head = "<|start_header_id|>{}<|end_header_id|>\n\n"
    assert render(LLAMA3_INSTRUCT, HI) == head.format(
        "user"
    ) + "Hi<|eot_id|>" + head.format("assistant")
    assert render(LLAMA3_INSTRUCT, HISTORY) == (
        head.format("system")
        + "You are terse.<|eot_id|>"
        + head.format("user")
        + "Hi<|eot_id|>"
        + head.format("assistant")
        + "Hello!<|eot_id|>"
        + head.format("user")
        + "Weather?<|eot_id|>"
        + head.format("assistant")
    )


def test_legacy_template_continues_a_trailing_assistant_message() -> None:
    messages = [ChatMessage("user", "Count"), ChatMessage("assistant", "1, 2,")]
    assert render(LLAMA3_INSTRUCT, messages).endswith("<|end_header_id|>\n\n1, 2,")


HEAD = "<|start_header_id|>{}<|end_header_id|>\n\n"


@pytest.mark.parametrize(
    ("messages", "tools", "expected"),
    [
        (HI, None, HEAD.format("user") + "Hi<|eot_id|>" + HEAD.format("assistant")),
        (
            [SYSTEM, *HI],
            None,
            HEAD.format("system")
            + "You are terse.<|eot_id|>"
            + HEAD.format("user")
            + "Hi<|eot_id|>"
            + HEAD.format("assistant"),
        ),
        (
            HISTORY,
            None,
            HEAD.format("system")
            + "You are terse.<|eot_id|>"
            + HEAD.format("user")
            + "Hi<|eot_id|>"
            + HEAD.format("assistant")
            + "Hello!<|eot_id|>"
            + HEAD.format("user")
            + "Weather?<|eot_id|>"
            + HEAD.format("assistant"),
        ),
        (
            ASK,
            [WEATHER_TOOL],
            HEAD.format("system")
            + "You are terse.\n\nYou are a helpful assistant with tool calling "
            "capabilities.<|eot_id|>"
            + HEAD.format("user")
            + 'Respond in the format {"name": function '
            'name, "parameters": dictionary of argument name and its value}. Do not use variables.\n\n'
            + WEATHER_JSON
            + "\n\nQuestion: Weather in Paris?<|eot_id|>"
            + HEAD.format("assistant"),
        ),
        (
            TOOL_TURNS,
            [WEATHER_TOOL],
            HEAD.format("system")
            + "You are a helpful assistant with tool calling capabilities.<|eot_id|>"
            + HEAD.format("user")
            + "Weather in Paris?<|eot_id|>"
            + HEAD.format("assistant")
            + '{"name": "get_weather", "parameters": {"city":"Paris"}}<|eot_id|>'
            + HEAD.format("ipython")
            + "12C<|eot_id|>"
            + HEAD.format("assistant"),
        ),
    ],
    ids=["user", "system", "history", "tools", "tool-call-and-result"],
)
def test_llama31_with_tools_renders_like_ollama(messages, tools, expected) -> None:
    assert render(LLAMA31_TOOLS, messages, tools) == expected


@pytest.mark.parametrize(
    ("messages", "tools", "expected"),
    [
        (HI, None, "[INST] Hi[/INST]"),
        ([SYSTEM, *HI], None, "[INST] You are terse.\n\nHi[/INST]"),
        # Mistral puts the system prompt in the last user turn only.
        (
            HISTORY,
            None,
            "[INST] Hi[/INST]Hello!</s>[INST] You are terse.\n\nWeather?[/INST]",
        ),
        (
            ASK,
            [WEATHER_TOOL],
            (
                f"[AVAILABLE_TOOLS] [{WEATHER_JSON}][/AVAILABLE_TOOLS][INST] You are terse.\n\n"
                "Weather in Paris?[/INST]"
            ),
        ),
        (
            TOOL_TURNS,
            [WEATHER_TOOL],
            (
                '[INST] Weather in Paris?[/INST][TOOL_CALLS] [{"name": "get_weather", "arguments": '
                '{"city":"Paris"}}]</s>[TOOL_RESULTS] {"content": 12C} [/TOOL_RESULTS]'
            ),
        ),
    ],
    ids=["user", "system", "history", "tools", "tool-call-and-result"],
)
def test_mistral_with_tools_renders_like_ollama(messages, tools, expected) -> None:
    assert render(MISTRAL_TOOLS, messages, tools) == expected


@pytest.mark.parametrize(
    ("template", "messages", "expected"),
    [
        (
            GEMMA_INSTRUCT,
            HI,
            "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n",
        ),
        (
            GEMMA_INSTRUCT,
            [SYSTEM, *HI],
            "<start_of_turn>user\nYou are terse. Hi<end_of_turn>\n<start_of_turn>model\n",
        ),
        (
            GEMMA_INSTRUCT,
            HISTORY,
            (
                "<start_of_turn>user\nYou are terse. Hi<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n"
                "<start_of_turn>user\nWeather?<end_of_turn>\n<start_of_turn>model\n"
            ),
        ),
        (
            GEMMA2_INSTRUCT,
            HI,
            "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n",
        ),
        (
            GEMMA2_INSTRUCT,
            [SYSTEM, *HI],
            (
                "<start_of_turn>user\nYou are terse.<end_of_turn>\n<start_of_turn>user\nHi<end_of_turn>\n"
                "<start_of_turn>model\n"
            ),
        ),
        (
            GEMMA2_INSTRUCT,
            HISTORY,
            (
                "<start_of_turn>user\nYou are terse.<end_of_turn>\n<start_of_turn>user\nHi<end_of_turn>\n"
                "<start_of_turn>model\nHello!<end_of_turn>\n<start_of_turn>user\nWeather?<end_of_turn>\n"
                "<start_of_turn>model\n"
            ),
        ),
    ],
    ids=[
        "gemma-user",
        "gemma-system",
        "gemma-history",
        "gemma2-user",
        "gemma2-system",
        "gemma2-history",
    ],
)
def test_gemma_templates_render_like_ollama(template, messages, expected) -> None:
    assert render(template, messages) == expected


def test_gemma_ignores_tools_and_does_not_claim_to_support_them() -> None:
    assert render(GEMMA_INSTRUCT, ASK, [WEATHER_TOOL]) == render(GEMMA_INSTRUCT, ASK)
    assert template_supports(GEMMA_INSTRUCT, None) == set()


def test_capabilities_are_read_from_the_template() -> None:
    assert template_supports(CHATML_TOOLS, None) == {"tools"}
    assert template_supports(MISTRAL_TOOLS, None) == {"tools"}
    assert template_supports(
        "{{ .Prompt }}{{ if .Suffix }}<FIM>{{ .Suffix }}{{ end }}", None
    ) == {"insert"}
    assert template_supports("{{ if .Think }}<think>{{ end }}{{ .Prompt }}", None) == {
        "thinking"
    }


def test_a_chatml_template_without_messages_gives_the_same_prompt_turn_by_turn() -> (
    None
):
    legacy = (
        "{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}"
        "{{ if .Prompt }}<|im_start|>user\n{{ .Prompt }}<|im_end|>\n{{ end }}"
        "<|im_start|>assistant\n{{ .Response }}<|im_end|>\n"
    )
    assert render(legacy, HISTORY) == render(CHATML_TOOLS, HISTORY)


def test_consecutive_messages_of_one_role_are_merged_and_system_messages_joined() -> (
    None
):
    messages = [
        ChatMessage("system", "A"),
        ChatMessage("system", "B"),
        ChatMessage("user", "one"),
        ChatMessage("user", "two"),
    ]
    template = "{{ .System }}|{{ range .Messages }}{{ .Role }}={{ .Content }};{{ end }}"
    assert render(template, messages) == "A\n\nB|system=A\n\nB;user=one\n\ntwo;"
