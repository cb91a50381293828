"""Parser for Go's text/template syntax: tokens (golex) into a tree of frozen nodes.

Everything Go's own parser rejects at parse time is rejected here too (undefined variables,
unknown functions, a stray ``{{ end }}``), plus the constructs llmd does not run (``define``,
``template``, ``block``), so that /api/create refuses a template before any request uses it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from llmd.errors import TemplateError
from llmd.templates.golex import Token, tokenize

# Functions the evaluator implements: Go's builtins plus Ollama's template helpers.
FUNCTIONS = frozenset(
    {
        "and",
        "or",
        "not",
        "eq",
        "ne",
        "lt",
        "le",
        "gt",
        "ge",
        "len",
        "slice",
        "index",
        "print",
        "printf",
        "println",
        "json",
        "currentDate",
        "yesterdayDate",
        "toTypeScriptType",
    }
)
# Go builtins that a valid Go template may call but that llmd does not implement.
UNSUPPORTED_FUNCTIONS = frozenset({"call", "html", "js", "urlquery"})


@dataclass(frozen=True, slots=True)
class Dot:
    pass


@dataclass(frozen=True, slots=True)
class Nil:
    pass


@dataclass(frozen=True, slots=True)
class Literal:
    value: str | int | float | bool


@dataclass(frozen=True, slots=True)
class Field:
    names: tuple[str, ...]  # .A.B on dot


@dataclass(frozen=True, slots=True)
class Variable:
    name: str  # "$", "$x"
    names: tuple[str, ...] = ()  # $x.A.B


@dataclass(frozen=True, slots=True)
class Chain:
    node: Pipe
    names: tuple[str, ...]  # (pipeline).A.B


@dataclass(frozen=True, slots=True)
class Function:
    name: str


Operand = Union[Dot, Nil, Literal, Field, Variable, Chain, Function, "Pipe"]


@dataclass(frozen=True, slots=True)
class Command:
    args: tuple[Operand, ...]


@dataclass(frozen=True, slots=True)
class Pipe:
    line: int
    decl: tuple[str, ...]  # variables declared (:=) or assigned (=) by this pipeline
    assign: bool
    cmds: tuple[Command, ...]


@dataclass(frozen=True, slots=True)
class Text:
    text: str


@dataclass(frozen=True, slots=True)
class Action:
    pipe: Pipe


@dataclass(frozen=True, slots=True)
class If:
    pipe: Pipe
    body: tuple[Node, ...]
    orelse: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class With:
    pipe: Pipe
    body: tuple[Node, ...]
    orelse: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Range:
    pipe: Pipe
    body: tuple[Node, ...]
    orelse: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Break:
    line: int


@dataclass(frozen=True, slots=True)
class Continue:
    line: int


Node = Text | Action | If | With | Range | Break | Continue
Control = (If, With, Range)


def parse(src: str) -> tuple[Node, ...]:
    """The template's node tree; TemplateError names the first construct that does not parse."""
    try:
        return _Parser(tokenize(src)).parse_template()
    except RecursionError:
        raise TemplateError("template is nested too deeply") from None


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.i = 0
        self.vars = ["$"]
        self.range_depth = 0

    def next(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def peek(self) -> Token:
        return self.tokens[self.i]

    def fail(self, tok: Token, problem: str) -> TemplateError:
        return TemplateError(f"line {tok.line}: {problem}")

    def parse_template(self) -> tuple[Node, ...]:
        nodes, stop = self.parse_list()
        if stop is not None:
            raise self.fail(stop, f"unexpected {{{{{stop.value}}}}}")
        return nodes

    def parse_list(self) -> tuple[tuple[Node, ...], Token | None]:
        """Nodes up to an ``{{ end }}`` or ``{{ else`` (returned, consumed up to the keyword)."""
        nodes: list[Node] = []
        while self.i < len(self.tokens):
            tok = self.next()
            if tok.kind == "text":
                if tok.value:
                    nodes.append(Text(str(tok.value)))
                continue
            # an "open" token: an action
            first = self.peek()
            if first.kind == "keyword":
                self.next()
                word = first.value
                if word in ("end", "else"):
                    return tuple(nodes), first
                nodes.append(self.parse_keyword(first))
            else:
                pipe = self.parse_pipe(first, "command")
                self.expect_close()
                nodes.append(Action(pipe))
        return tuple(nodes), None

    def parse_keyword(self, tok: Token) -> Node:
        word = tok.value
        if word in ("define", "template", "block"):
            raise self.fail(tok, f"unsupported construct {{{{{word}}}}}")
        if word in ("break", "continue"):
            if self.range_depth == 0:
                raise self.fail(tok, f"{{{{{word}}}}} outside {{{{range}}}}")
            self.expect_close()
            return Break(tok.line) if word == "break" else Continue(tok.line)
        return self.parse_control(tok, str(word))

    def parse_control(self, tok: Token, word: str) -> Node:
        mark = len(self.vars)
        pipe = self.parse_pipe(self.peek(), word)
        self.expect_close()
        if word == "range":
            self.range_depth += 1
        body, stop = self.parse_list()
        if word == "range":
            self.range_depth -= 1
        if stop is None:
            raise self.fail(tok, f"unexpected EOF: {{{{{word}}}}} has no {{{{end}}}}")
        orelse: tuple[Node, ...] = ()
        if stop.value == "else":
            nxt = self.peek()
            if nxt.kind == "keyword" and nxt.value == word and word in ("if", "with"):
                # {{ else if x }} is {{ else }}{{ if x }}...{{ end }} sharing the outer end.
                self.next()
                orelse = (self.parse_control(nxt, word),)
            else:
                self.expect_close()
                orelse, stop = self.parse_list()
                if stop is None or stop.value != "end":
                    raise self.fail(
                        tok, f"expected {{{{end}}}} to close {{{{{word}}}}}"
                    )
                self.expect_close()
        else:
            self.expect_close()
        del self.vars[mark:]
        kind = {"if": If, "with": With, "range": Range}[word]
        return kind(pipe, body, orelse)

    def expect_close(self) -> None:
        tok = self.next()
        if tok.kind != "close":
            raise self.fail(tok, f"unexpected {_describe(tok)} in action")

    def parse_pipe(self, first: Token, context: str) -> Pipe:
        decl: list[str] = []
        assign = False
        j = self.i
        names: list[str] = []
        while self.tokens[j].kind == "var":
            names.append(str(self.tokens[j].value))
            if (
                self.tokens[j + 1].kind == "comma"
                and context == "range"
                and len(names) < 2
            ):
                j += 2
                continue
            if self.tokens[j + 1].kind in ("declare", "assign"):
                assign = self.tokens[j + 1].kind == "assign"
                decl = names
                self.i = j + 2
            break
        if len(decl) == 2 and assign:
            raise self.fail(first, "range can only initialize variables")
        for name in decl:
            if assign and name not in self.vars:
                raise self.fail(first, f'undefined variable "{name}"')
        cmds = self.parse_commands(first, context)
        if not assign:
            self.vars.extend(decl)
        return Pipe(first.line, tuple(decl), assign, cmds)

    def parse_commands(self, first: Token, context: str) -> tuple[Command, ...]:
        cmds: list[Command] = []
        while True:
            args: list[Operand] = []
            while self.peek().kind not in ("pipe", "close", "rparen"):
                args.append(self.parse_operand())
            if not args:
                raise self.fail(
                    self.peek(), f"missing value for {'command' if cmds else context}"
                )
            if len(args) > 1 and not isinstance(args[0], Function):
                raise self.fail(
                    first, f"can't give argument to non-function {_show(args[0])}"
                )
            if cmds and not isinstance(args[0], Function):
                raise self.fail(
                    first, f"non executable command in pipeline stage {len(cmds) + 1}"
                )
            if len(args) == 1 and isinstance(args[0], Nil):
                raise self.fail(first, "nil is not a command")
            cmds.append(Command(tuple(args)))
            if self.peek().kind != "pipe":
                return tuple(cmds)
            self.next()

    def parse_operand(self) -> Operand:
        tok = self.next()
        kind = tok.kind
        node: Operand
        if kind == "field":
            return Field(tok.value)  # type: ignore[arg-type]
        if kind == "dot":
            return Dot()
        if kind == "nil":
            return Nil()
        if kind in ("string", "number", "bool"):
            return Literal(tok.value)  # type: ignore[arg-type]
        if kind == "ident":
            name = str(tok.value)
            if name in UNSUPPORTED_FUNCTIONS:
                raise self.fail(tok, f'unsupported construct: function "{name}"')
            if name not in FUNCTIONS:
                raise self.fail(tok, f'function "{name}" not defined')
            return Function(name)
        if kind == "var":
            name = str(tok.value)
            if name not in self.vars:
                raise self.fail(tok, f'undefined variable "{name}"')
            node = Variable(name, self.chained())
            return node
        if kind == "lparen":
            pipe = self.parse_pipe(self.peek(), "parenthesized pipeline")
            close = self.next()
            if close.kind != "rparen":
                raise self.fail(close, "unclosed left paren")
            names = self.chained()
            return Chain(pipe, names) if names else pipe
        raise self.fail(tok, f"unexpected {_describe(tok)} in operand")

    def chained(self) -> tuple[str, ...]:
        tok = self.peek()
        if tok.kind == "field" and not tok.spaced:
            self.next()
            return tok.value  # type: ignore[return-value]
        return ()


def _describe(tok: Token) -> str:
    if tok.kind == "close":
        return '"}}"'
    if tok.kind in ("keyword", "ident"):
        return f"<{tok.value}>"
    if tok.kind == "text":
        return "text"
    return {
        "rparen": '")"',
        "lparen": '"("',
        "comma": '","',
        "pipe": '"|"',
        "declare": '":="',
        "assign": '"="',
        "open": '"{{"',
    }.get(tok.kind, repr(tok.value))


def _show(node: Operand) -> str:
    if isinstance(node, Field):
        return "." + ".".join(node.names)
    if isinstance(node, Variable):
        return node.name + "".join("." + n for n in node.names)
    if isinstance(node, Literal):
        return repr(node.value)
    return type(node).__name__.lower()


def walk(nodes: tuple[Node, ...]):  # type: ignore[no-untyped-def]
    """Every node and operand in source order, for Ollama's Vars() and capability detection."""
    for node in nodes:
        yield node
        if isinstance(node, Action):
            yield from walk_pipe(node.pipe)
        elif isinstance(node, Control):
            yield from walk_pipe(node.pipe)
            yield from walk(node.body)
            yield from walk(node.orelse)


def walk_pipe(pipe: Pipe):  # type: ignore[no-untyped-def]
    """The pipeline and every operand inside it, nested pipelines included."""
    yield pipe
    for cmd in pipe.cmds:
        for arg in cmd.args:
            yield arg
            if isinstance(arg, Pipe):
                yield from walk_pipe(arg)
            elif isinstance(arg, Chain):
                yield from walk_pipe(arg.node)
