"""Chat templates: conversations into the prompt text a model expects, and tool calls back out.

    render_chat(...)        /api/chat's prompt (Go TEMPLATE, else the GGUF's Jinja, else default)
    render_generate(...)    /api/generate's templated prompt, suffix (fill-in-the-middle) included
    template_supports(...)  {"tools", "insert", "thinking"} as the template shows them
    check_go_template(text) TemplateError if a TEMPLATE does not parse (used by /api/create)
    parse_tool_calls(...)   (content, calls) from a whole model output
    tool_call_parser(...)   a ToolCallParser for streamed output: feed(delta), then flush()

Every failure is a ``TemplateError`` (an ``InvalidRequest``) whose message starts
``template error:``.
"""

from llmd.templates.gotemplate import check_go_template
from llmd.templates.messages import ChatMessage, ToolCall
from llmd.templates.render import render_chat, render_generate, template_supports
from llmd.templates.tools import (
    ToolCallParser,
    parse_tool_calls,
    tool_call_parser,
    tool_call_tags,
)

__all__ = [
    "ChatMessage",
    "ToolCall",
    "ToolCallParser",
    "check_go_template",
    "parse_tool_calls",
    "render_chat",
    "render_generate",
    "template_supports",
    "tool_call_parser",
    "tool_call_tags",
]
