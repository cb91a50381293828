"""What a Go template sees: Ollama's ``template.Values`` as Go values (govalues).

Messages and tools become the structs Ollama passes (``api.Message``, ``api.Tool``), so a
template reads ``.Function.Name`` or ``.ToolCalls`` exactly as it does under Ollama, and
``json`` prints them with Ollama's JSON field names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from llmd.templates.govalues import GoStringer, GoStruct, JsonList, JsonMap
from llmd.templates.messages import ChatMessage, ToolCall


def collate(messages: Sequence[ChatMessage]) -> tuple[str, list[ChatMessage]]:
    """Ollama's collate: all system texts joined, and consecutive same-role turns merged."""
    system = [m.content for m in messages if m.role == "system"]
    merged: list[ChatMessage] = []
    for m in messages:
        if merged and merged[-1].role == m.role and m.role != "tool":
            last = merged[-1]
            merged[-1] = ChatMessage(
                last.role,
                last.content + "\n\n" + m.content,
                last.images,
                last.tool_calls,
                last.tool_name,
                last.thinking,
            )
        else:
            merged.append(m)
    return "\n\n".join(system), merged


def tool_call_value(call: ToolCall, index: int) -> GoStruct:
    args = JsonMap(call.arguments)
    function = GoStruct(
        "api.ToolCallFunction",
        {"Index": index, "Name": call.name, "Arguments": args},
        {"index": index, "name": call.name, "arguments": dict(call.arguments)},
    )
    as_json: dict[str, object] = {"function": function.json_value}
    if call.id:
        as_json = {"id": call.id, **as_json}
    return GoStruct(
        "api.ToolCall", {"ID": call.id or "", "Function": function}, as_json
    )


def message_value(m: ChatMessage) -> GoStruct:
    calls = [tool_call_value(c, i) for i, c in enumerate(m.tool_calls)]
    as_json: dict[str, object] = {"role": m.role, "content": m.content}
    if m.thinking:
        as_json["thinking"] = m.thinking
    if calls:
        as_json["tool_calls"] = [c.json_value for c in calls]
    if m.tool_name:
        as_json["tool_name"] = m.tool_name
    return GoStruct(
        "*api.Message",
        {
            "Role": m.role,
            "Content": m.content,
            "Thinking": m.thinking or "",
            "Images": list(m.images),
            "ToolCalls": calls,
            "ToolName": m.tool_name or "",
            "ToolCallID": "",
        },
        as_json,
    )


def _property_value(prop: object) -> object:
    if not isinstance(prop, Mapping):
        return prop
    kind = prop.get("type")
    names = (
        [kind]
        if isinstance(kind, str)
        else list(kind)
        if isinstance(kind, list)
        else []
    )
    # api.PropertyType prints a single type bare and several as a Go slice.
    printed = (
        names[0]
        if len(names) == 1
        else "[" + " ".join(map(str, names)) + "]"
        if names
        else ""
    )
    return GoStruct(
        "api.ToolProperty",
        {
            "AnyOf": prop.get("anyOf"),
            "Type": GoStringer(printed, kind),
            "Items": prop.get("items"),
            "Description": prop.get("description", ""),
            "Enum": prop.get("enum"),
            "Properties": _properties(prop.get("properties")),
        },
        dict(prop),
    )


def _properties(props: object) -> dict[str, object] | None:
    if not isinstance(props, Mapping):
        return None
    return {str(k): _property_value(v) for k, v in props.items()}


def tool_value(tool: Mapping[str, object]) -> GoStruct:
    fn = tool.get("function")
    fn = fn if isinstance(fn, Mapping) else {}
    params = fn.get("parameters")
    params = params if isinstance(params, Mapping) else {}
    parameters = GoStruct(
        "api.ToolFunctionParameters",
        {
            "Type": params.get("type", ""),
            "Defs": params.get("$defs"),
            "Items": params.get("items"),
            "Required": list(params.get("required") or []),  # type: ignore[call-overload]
            "Properties": _properties(params.get("properties")) or {},
        },
        dict(params),
    )
    function = GoStruct(
        "api.ToolFunction",
        {
            "Name": fn.get("name", ""),
            "Description": fn.get("description", ""),
            "Parameters": parameters,
        },
        dict(fn),
        prints_json=True,
    )
    return GoStruct(
        "api.Tool",
        {
            "Type": tool.get("type", "function"),
            "Items": tool.get("items"),
            "Function": function,
        },
        dict(tool),
        prints_json=True,
    )


def tools_value(tools: Sequence[Mapping[str, object]]) -> JsonList:
    """``.Tools``: printing it (``{{ $.Tools }}``) writes the list as JSON, as Ollama's does."""
    return JsonList(tool_value(t) for t in tools)
