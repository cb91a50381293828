"""Ollama's Go-template ``TEMPLATE``: parsed once, then executed per request.

``GoTemplate`` holds the tree and what Ollama derives from it: the variables it uses
(template.go ``Vars``), the tree cut after ``.Response`` for the last turn of a legacy
template, and the text around ``.ToolCalls`` that tells how the model writes a tool call.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

from llmd.templates import goparse as p
from llmd.templates.goeval import execute


class GoTemplate:
    __slots__ = ("_cut", "nodes", "text", "vars")

    def __init__(self, text: str) -> None:
        self.text = text
        self.nodes = p.parse(text)
        names: set[str] = set()
        for node in p.walk(self.nodes):
            if isinstance(node, (p.Field, p.Variable, p.Chain)):
                names.update(n.lower() for n in node.names)
        self.vars = frozenset(names)
        if not self.uses("messages") and not self.uses("response"):
            # Ollama appends {{ .Response }} so that a prompt-only template still shows history.
            response = p.Pipe(1, (), False, (p.Command((p.Field(("Response",)),)),))
            self.nodes = (*self.nodes, p.Action(response))
            self.vars = self.vars | {"response"}
        self._cut: tuple[p.Node, ...] | None = None

    def uses(self, name: str) -> bool:
        """Whether the template refers to field ``name`` anywhere (case-insensitive, as Ollama)."""
        return name.lower() in self.vars

    def execute(self, data: Mapping[str, object]) -> str:
        return execute(self.nodes, data)

    def execute_until_response(self, data: Mapping[str, object]) -> str:
        """Render only up to the first ``.Response``: the open turn the model continues."""
        if self._cut is None:
            self._cut = _cut_after_response(self.nodes)
        return execute(self._cut, data)

    def tool_call_tags(self) -> tuple[str, str] | None:
        """The text a model writes around its tool calls, as the template shows them, if any."""
        return _tool_call_tags(self.nodes)


@lru_cache(maxsize=64)
def compile_go(text: str) -> GoTemplate:
    """The parsed template (cached: a model's template text never changes)."""
    return GoTemplate(text)


def check_go_template(text: str) -> None:
    """Raise TemplateError if ``text`` does not parse or uses what llmd cannot run."""
    compile_go(text)


def _cut_after_response(nodes: tuple[p.Node, ...]) -> tuple[p.Node, ...]:
    """Ollama's deleteNode: keep the first ``.Response`` field and drop everything after it."""
    cut = False

    def gone(node: object) -> bool:
        nonlocal cut
        if isinstance(node, p.Field) and "Response" in node.names:
            cut = True
            return False
        return cut

    def walk_list(items: tuple[p.Node, ...]) -> tuple[p.Node, ...]:
        out = []
        for item in items:
            kept = walk_node(item)
            if kept is not None:
                out.append(kept)
        return tuple(out)

    def walk_node(node: p.Node) -> p.Node | None:
        if gone(node):
            return None
        if isinstance(node, p.Action):
            pipe = walk_pipe(node.pipe)
            return None if pipe is None else p.Action(pipe)
        if isinstance(node, p.Control):
            # Only the branches are walked, not the condition: `{{ if .Response }}` does not cut.
            return type(node)(node.pipe, walk_list(node.body), walk_list(node.orelse))
        return node

    def walk_pipe(pipe: p.Pipe) -> p.Pipe | None:
        if gone(pipe):
            return None
        cmds = []
        for cmd in pipe.cmds:
            args = []
            for arg in cmd.args:
                if isinstance(arg, p.Pipe):
                    kept = walk_pipe(arg)
                elif gone(arg):
                    kept = None
                else:
                    kept = arg
                if kept is not None:
                    args.append(kept)
            if not args:
                return None
            cmds.append(p.Command(tuple(args)))
        return p.Pipe(pipe.line, pipe.decl, pipe.assign, tuple(cmds))

    return walk_list(nodes)


def _mentions(pipe: p.Pipe, name: str) -> bool:
    return any(
        isinstance(n, (p.Field, p.Variable, p.Chain)) and name in n.names
        for n in p.walk_pipe(pipe)
    )


def _tool_call_tags(nodes: tuple[p.Node, ...]) -> tuple[str, str] | None:
    for node in p.walk(nodes):
        if isinstance(node, (p.If, p.With)) and _mentions(node.pipe, "ToolCalls"):
            found = _tags_around_range(node.body)
            if found is not None:
                return found
        if isinstance(node, p.Range) and _mentions(node.pipe, "ToolCalls"):
            found = _tags_in_body(node.body)
            if found is not None:
                return found
    return None


def _tags_around_range(body: tuple[p.Node, ...]) -> tuple[str, str] | None:
    """``{{ if .ToolCalls }}<tool_call>{{ range .ToolCalls }}...{{ end }}</tool_call>``."""
    for i, node in enumerate(body):
        if isinstance(node, p.Range) and _mentions(node.pipe, "ToolCalls"):
            before = "".join(n.text for n in body[:i] if isinstance(n, p.Text))
            after = "".join(n.text for n in body[i + 1 :] if isinstance(n, p.Text))
            # Mistral writes `[TOOL_CALLS] [` and then the objects: the bracket is the JSON's.
            opening = before.strip().rstrip("[").strip()
            closing = after.strip().lstrip("]").strip()
            if opening:
                return opening, closing
            return _tags_in_body(node.body)
    return None


def _tags_in_body(body: tuple[p.Node, ...]) -> tuple[str, str] | None:
    """``{{ range .ToolCalls }}<tool_call>{"name": ...}</tool_call>{{ end }}``."""
    texts = [n.text for n in body if isinstance(n, p.Text)]
    if not texts:
        return None
    opening = texts[0].split("{", 1)[0].strip()
    closing = texts[-1].rsplit("}", 1)[-1].strip() if "}" in texts[-1] else ""
    return (opening, closing) if opening else None
