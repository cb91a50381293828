"""Executes a parsed Go template (goparse) over Go values (govalues), with text/template's rules.

Execution errors (a missing struct field, a bad comparison, a wrong argument count) become a
TemplateError naming the line and the problem, as Go's ``executing ... at <...>`` errors do.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Callable, Mapping

from llmd.errors import TemplateError
from llmd.templates import goparse as p
from llmd.templates.govalues import (
    GoStringer,
    GoStruct,
    go_json,
    go_print,
    is_true,
    type_name,
)


class _Failure(Exception):
    """An execution problem, turned into a TemplateError with its line where it is caught."""


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


def execute(nodes: tuple[p.Node, ...], data: object) -> str:
    state = _State(data)
    try:
        state.walk_list(nodes, data)
    except RecursionError:
        raise TemplateError("template is nested too deeply") from None
    return "".join(state.out)


class _State:
    def __init__(self, data: object) -> None:
        self.out: list[str] = []
        self.vars: list[tuple[str, object]] = [("$", data)]
        self.line = 1

    def walk_list(self, nodes: tuple[p.Node, ...], dot: object) -> None:
        for node in nodes:
            self.walk(node, dot)

    def walk(self, node: p.Node, dot: object) -> None:
        if isinstance(node, p.Text):
            self.out.append(node.text)
        elif isinstance(node, p.Action):
            value = self.pipe(node.pipe, dot)
            if not node.pipe.decl:
                self.out.append(go_print(value))
        elif isinstance(node, (p.If, p.With)):
            mark = len(self.vars)
            value = self.pipe(node.pipe, dot)
            if is_true(value):
                self.walk_list(node.body, value if isinstance(node, p.With) else dot)
            else:
                self.walk_list(node.orelse, dot)
            del self.vars[mark:]
        elif isinstance(node, p.Range):
            self.walk_range(node, dot)
        elif isinstance(node, p.Break):
            raise _Break
        elif isinstance(node, p.Continue):
            raise _Continue

    def walk_range(self, node: p.Range, dot: object) -> None:
        mark = len(self.vars)
        self.line = node.pipe.line
        value = self.commands(node.pipe.cmds, dot)
        items: list[tuple[object, object]]
        if value is None:
            items = []
        elif isinstance(value, Mapping):
            items = [(k, value[k]) for k in sorted(value)]
        elif isinstance(value, (list, tuple)):
            items = list(enumerate(value))
        elif (
            isinstance(value, int)
            and not isinstance(value, bool)
            and len(node.pipe.decl) < 2
        ):
            items = [(i, i) for i in range(value)]
        else:
            raise self.error(f"range can't iterate over {go_print(value)}")
        for name in node.pipe.decl:
            self.vars.append((name, None))
        for key, elem in items:
            if len(node.pipe.decl) == 1:
                self.vars[mark] = (node.pipe.decl[0], elem)
            elif len(node.pipe.decl) == 2:
                self.vars[mark] = (node.pipe.decl[0], key)
                self.vars[mark + 1] = (node.pipe.decl[1], elem)
            inner = len(self.vars)
            try:
                self.walk_list(node.body, elem)
            except _Break:
                break
            except _Continue:
                pass
            finally:
                del self.vars[inner:]
        if not items:
            self.walk_list(node.orelse, dot)
        del self.vars[mark:]

    def error(self, problem: str) -> TemplateError:
        return TemplateError(f"line {self.line}: {problem}")

    def pipe(self, pipe: p.Pipe, dot: object) -> object:
        self.line = pipe.line
        value = self.commands(pipe.cmds, dot)
        for name in pipe.decl:
            if pipe.assign:
                for i in range(len(self.vars) - 1, -1, -1):
                    if self.vars[i][0] == name:
                        self.vars[i] = (name, value)
                        break
            else:
                self.vars.append((name, value))
        return value

    def commands(self, cmds: tuple[p.Command, ...], dot: object) -> object:
        value: object = None
        for i, cmd in enumerate(cmds):
            try:
                value = self.command(cmd, dot, (value,) if i else ())
            except _Failure as exc:
                raise self.error(str(exc)) from None
        return value

    def command(self, cmd: p.Command, dot: object, final: tuple[object, ...]) -> object:
        head = cmd.args[0]
        if isinstance(head, p.Function):
            thunks = [self.thunk(a, dot) for a in cmd.args[1:]]
            thunks += [(lambda v=v: v) for v in final]
            return call(head.name, thunks)
        return self.arg(head, dot)

    def thunk(self, node: p.Operand, dot: object) -> Callable[[], object]:
        return lambda: self.arg(node, dot)

    def arg(self, node: p.Operand, dot: object) -> object:
        if isinstance(node, p.Dot):
            return dot
        if isinstance(node, p.Nil):
            return None
        if isinstance(node, p.Literal):
            return node.value
        if isinstance(node, p.Field):
            return fields(dot, node.names)
        if isinstance(node, p.Variable):
            return fields(self.lookup(node.name), node.names)
        if isinstance(node, p.Chain):
            return fields(self.commands(node.node.cmds, dot), node.names)
        if isinstance(node, p.Pipe):
            return self.commands(node.cmds, dot)
        return call(node.name, [])

    def lookup(self, name: str) -> object:
        for var, value in reversed(self.vars):
            if var == name:
                return value
        raise _Failure(f'undefined variable "{name}"')


def fields(value: object, names: tuple[str, ...]) -> object:
    for name in names:
        if isinstance(value, GoStruct):
            if name not in value.fields:
                raise _Failure(f"can't evaluate field {name} in type {value.type_name}")
            value = value.fields[name]
        elif isinstance(value, Mapping):
            value = value.get(name)
        elif value is None:
            raise _Failure(f"nil pointer evaluating interface {{}}.{name}")
        else:
            raise _Failure(f"can't evaluate field {name} in type {type_name(value)}")
    return value


def call(name: str, thunks: list[Callable[[], object]]) -> object:
    if name in ("and", "or"):
        if not thunks:
            raise _Failure(f"wrong number of args for {name}: want at least 1 got 0")
        value: object = None
        for (
            thunk
        ) in thunks:  # Go short-circuits: the first deciding argument is the result
            value = thunk()
            if is_true(value) == (name == "or"):
                return value
        return value
    args = [t() for t in thunks]
    fn, arity = _FUNCS[name]
    lo, hi = arity
    if len(args) < lo or (hi is not None and len(args) > hi):
        want = str(lo) if lo == hi else f"at least {lo}"
        raise _Failure(f"wrong number of args for {name}: want {want} got {len(args)}")
    return fn(*args)


def _basic(value: object) -> str:
    if value is None:
        return "invalid"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "int" if isinstance(value, int) else "float"
    if isinstance(value, str):
        return "string"
    return "other"


def _eq(a: object, *others: object) -> bool:
    if not others:
        raise _Failure("missing argument for comparison")
    for b in others:
        ka, kb = _basic(a), _basic(b)
        if ka != kb:
            if ka != "invalid" and kb != "invalid":
                raise _Failure("incompatible types for comparison")
            continue
        if ka == "other" and type(a) is not type(b):
            raise _Failure("incompatible types for comparison")
        if a == b:
            return True
    return False


def _ne(a: object, b: object) -> bool:
    return not _eq(a, b)


def _ordered(a: object, b: object) -> tuple[object, object]:
    ka, kb = _basic(a), _basic(b)
    if ka in ("invalid", "bool", "other") or kb in ("invalid", "bool", "other"):
        raise _Failure("invalid type for comparison")
    if ka != kb:
        raise _Failure("incompatible types for comparison")
    return a, b


def _lt(a: object, b: object) -> bool:
    x, y = _ordered(a, b)
    return x < y  # type: ignore[operator]


def _len(value: object) -> int:
    if isinstance(value, str):
        return len(value.encode())  # Go's len of a string counts bytes
    if isinstance(value, (Mapping, list, tuple)):
        return len(value)
    raise _Failure(f"error calling len: len of type {type_name(value)}")


def _index(value: object, *keys: object) -> object:
    for key in keys:
        if value is None:
            raise _Failure("error calling index: index of untyped nil")
        if isinstance(value, Mapping):
            value = value.get(key)  # type: ignore[call-overload]
        elif isinstance(value, (list, tuple, str)) and isinstance(key, int):
            if not 0 <= key < len(value):
                raise _Failure(f"error calling index: index out of range: {key}")
            value = value[key] if not isinstance(value, str) else value.encode()[key]
        else:
            raise _Failure(
                f"error calling index: can't index item of type {type_name(value)}"
            )
    return value


def _slice(value: object, *idx: object) -> object:
    if not isinstance(value, (str, list, tuple)):
        raise _Failure(
            f"error calling slice: can't slice item of type {type_name(value)}"
        )
    if len(idx) > (2 if isinstance(value, str) else 3):
        raise _Failure(f"error calling slice: too many slice indexes: {len(idx)}")
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in idx):
        raise _Failure("error calling slice: cannot index slice with a non-integer")
    bounds = [int(i) for i in idx[:2]]  # type: ignore[call-overload]
    lo = bounds[0] if bounds else 0
    hi = bounds[1] if len(bounds) > 1 else len(value)
    if not 0 <= lo <= hi <= len(value):
        raise _Failure(
            f"error calling slice: index out of range: {hi if hi > len(value) else lo}"
        )
    return value[lo:hi]


def _sprint(*args: object) -> str:
    out: list[str] = []
    for i, arg in enumerate(args):
        # fmt.Sprint puts a space between operands when neither is a string.
        if i and not isinstance(arg, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(go_print(arg) if arg is not None else "<nil>")
    return "".join(out)


def _sprintln(*args: object) -> str:
    return " ".join(go_print(a) if a is not None else "<nil>" for a in args) + "\n"


_MAX_WIDTH = 1_000_000
_VERB = re.compile(r"%([-+# 0]*)(\d*)(?:\.(\d+))?([a-zA-Z%])")


def _sprintf(fmt: object, *args: object) -> str:
    if not isinstance(fmt, str):
        raise _Failure(f"error calling printf: wrong type for format: {type_name(fmt)}")
    rest = list(args)

    def verb(m: re.Match[str]) -> str:
        flags, width, prec, v = m.groups()
        if v == "%":
            return "%"
        # Go's fmt refuses a width or precision over a million (fmt.tooLarge); a request's
        # template must not make us pad a string to gigabytes.
        if (width and int(width) > _MAX_WIDTH) or (prec and int(prec) > _MAX_WIDTH):
            if rest:
                rest.pop(0)  # the verb's operand goes with it
            return "%!(BADWIDTH)" if width and int(width) > _MAX_WIDTH else "%!(BADPREC)"
        if not rest:
            return f"%!{v}(MISSING)"
        arg = rest.pop(0)
        if v == "q" and isinstance(arg, str):
            text = json.dumps(arg, ensure_ascii=False)  # close to strconv.Quote
        elif (
            v in "dfeg" and isinstance(arg, (int, float)) and not isinstance(arg, bool)
        ):
            spec = f"{flags}{width}{'.' + prec if prec else ''}{v if v != 'd' else 'd'}"
            text = format(int(arg) if v == "d" else float(arg), spec.replace("#", ""))
            return text
        elif v == "t" and isinstance(arg, bool) or v in "sv":
            text = go_print(arg) if arg is not None else "<nil>"
        else:
            return f"%!{v}({type_name(arg)}={go_print(arg)})"
        return (
            text.rjust(int(width))
            if width and "-" not in flags
            else text.ljust(int(width or 0))
        )

    out = _VERB.sub(verb, fmt)
    if rest:
        out += (
            "%!(EXTRA " + ", ".join(f"{type_name(a)}={go_print(a)}" for a in rest) + ")"
        )
    return out


def _date(days: int) -> Callable[..., str]:
    # Ollama ignores the optional format argument and always writes YYYY-MM-DD.
    return lambda *_: (
        datetime.date.today() + datetime.timedelta(days=days)
    ).isoformat()


def _ts_type(value: object) -> str:
    """Ollama's ToolProperty.ToTypeScriptType, for the types JSON Schema names."""
    prop = value.fields if isinstance(value, GoStruct) else value
    if not isinstance(prop, Mapping):
        return "any"
    kind = prop.get("Type")
    kinds = kind.json_value if isinstance(kind, GoStringer) else kind
    names = [kinds] if isinstance(kinds, str) else list(kinds or [])  # type: ignore[call-overload]
    mapping = {
        "string": "string",
        "number": "number",
        "integer": "number",
        "boolean": "boolean",
        "null": "null",
        "object": "Record<string, any>",
        "array": "any[]",
    }
    out = [mapping.get(str(n), "any") for n in names]
    return " | ".join(out) if out else "any"


_FUNCS: dict[str, tuple[Callable[..., object], tuple[int, int | None]]] = {
    "not": (lambda v: not is_true(v), (1, 1)),
    "eq": (_eq, (1, None)),
    "ne": (_ne, (2, 2)),
    "lt": (_lt, (2, 2)),
    "le": (lambda a, b: _lt(a, b) or _eq(a, b), (2, 2)),
    "gt": (lambda a, b: not _lt(a, b) and not _eq(a, b), (2, 2)),
    "ge": (lambda a, b: not _lt(a, b), (2, 2)),
    "len": (_len, (1, 1)),
    "index": (_index, (1, None)),
    "slice": (_slice, (1, None)),
    "print": (_sprint, (0, None)),
    "println": (_sprintln, (0, None)),
    "printf": (_sprintf, (1, None)),
    "json": (go_json, (1, 1)),
    "currentDate": (_date(0), (0, None)),
    "yesterdayDate": (_date(-1), (0, None)),
    "toTypeScriptType": (_ts_type, (1, 1)),
}

assert set(_FUNCS) | {"and", "or"} == p.FUNCTIONS
