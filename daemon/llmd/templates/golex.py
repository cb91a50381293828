"""Lexer for Go's text/template syntax, as Ollama's Modelfile TEMPLATE uses it.

Turns template source into a flat token list: text between actions, and the tokens inside
``{{ ... }}``. Trim markers (``{{- `` and `` -}}``) and comments are resolved here, so the
parser never sees them. Errors carry the line number, as Go's parser reports them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from llmd.errors import TemplateError

Kind = Literal[
    "text",
    "open",
    "close",
    "field",
    "var",
    "dot",
    "string",
    "number",
    "bool",
    "nil",
    "ident",
    "keyword",
    "declare",
    "assign",
    "pipe",
    "lparen",
    "rparen",
    "comma",
]

KEYWORDS = frozenset(
    {
        "if",
        "else",
        "end",
        "range",
        "with",
        "define",
        "template",
        "block",
        "break",
        "continue",
    }
)

_SPACE = " \t\r\n"
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_FIELDS = re.compile(rf"(?:\.{_NAME})+")
_VAR = re.compile(rf"\$(?:{_NAME}|[0-9]+)?")
_IDENT = re.compile(_NAME)
_NUMBER = re.compile(
    r"[+-]?(?:0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+|"
    r"(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)(?:[eE][+-]?[0-9]+)?)"
)
_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    '"': '"',
    "'": "'",
}


@dataclass(frozen=True, slots=True)
class Token:
    kind: Kind
    value: object  # text, name, literal value, or a tuple of field names
    line: int
    spaced: bool = (
        True  # whitespace came before it: `$x.A` chains, `$x .A` is two operands
    )


def _line(src: str, pos: int) -> int:
    return src.count("\n", 0, pos) + 1


def _unquote(body: str, line: int) -> str:
    out: list[str] = []
    i = 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        esc = body[i + 1] if i + 1 < len(body) else ""
        if esc in _ESCAPES:
            out.append(_ESCAPES[esc])
            i += 2
        elif esc in "xuU":
            width = {"x": 2, "u": 4, "U": 8}[esc]
            digits = body[i + 2 : i + 2 + width]
            if len(digits) != width or not all(
                d in "0123456789abcdefABCDEF" for d in digits
            ):
                raise TemplateError(f"line {line}: invalid syntax in string escape")
            out.append(chr(int(digits, 16)))
            i += 2 + width
        elif esc in "01234567":
            digits = body[i + 1 : i + 4]
            if len(digits) != 3 or not all(d in "01234567" for d in digits):
                raise TemplateError(f"line {line}: invalid syntax in string escape")
            out.append(chr(int(digits, 8)))
            i += 4
        else:
            raise TemplateError(f"line {line}: invalid syntax in string escape")
    return "".join(out)


def _number(text: str, line: int) -> int | float:
    clean = text.replace("_", "")
    try:
        if re.fullmatch(r"[+-]?0[xXoObB].*", clean):
            return int(clean, 0)
        if re.fullmatch(r"[+-]?[0-9]+", clean):
            return int(clean, 10)
        return float(clean)
    except ValueError:
        raise TemplateError(f"line {line}: bad number syntax: {text!r}") from None


def tokenize(src: str) -> list[Token]:
    """The tokens of ``src``; a TemplateError names the first thing that does not lex."""
    tokens: list[Token] = []
    pos = 0
    while True:
        start = src.find("{{", pos)
        if start < 0:
            tokens.append(Token("text", src[pos:], _line(src, pos)))
            return tokens
        text = src[pos:start]
        inner = start + 2
        if (
            src.startswith("-", inner)
            and inner + 1 < len(src)
            and src[inner + 1] in _SPACE
        ):
            text = text.rstrip(_SPACE)
            inner += 2
        tokens.append(Token("text", text, _line(src, pos)))
        pos = _lex_action(src, inner, _line(src, start), tokens)


def _close_at(src: str, i: int) -> tuple[int, bool] | None:
    """If an action closes at ``i``, where the text after it starts and whether it trims."""
    if src.startswith("}}", i):
        return i + 2, False
    if src[i] in _SPACE:
        j = i
        while j < len(src) and src[j] in _SPACE:
            j += 1
        if src.startswith("-}}", j):
            return j + 3, True
    return None


def _after_close(src: str, end: int, trim: bool) -> int:
    if trim:
        while end < len(src) and src[end] in _SPACE:
            end += 1
    return end


def _lex_action(src: str, i: int, line: int, tokens: list[Token]) -> int:
    """Lex one action starting after its ``{{``; return where the text after it starts."""
    j = i
    while j < len(src) and src[j] in _SPACE:
        j += 1
    if src.startswith("/*", j):
        stop = src.find("*/", j + 2)
        if stop < 0:
            raise TemplateError(f"line {line}: unclosed comment")
        closed = _close_at(src, stop + 2) if stop + 2 < len(src) else None
        if closed is None:
            raise TemplateError(f"line {line}: comment ends before closing delimiter")
        return _after_close(src, *closed)
    tokens.append(Token("open", None, line))
    spaced = True
    depth = 0
    while True:
        if i >= len(src):
            raise TemplateError(f"line {line}: unclosed action")
        closed = _close_at(src, i)
        if closed is not None and depth == 0:
            tokens.append(Token("close", None, _line(src, i)))
            return _after_close(src, *closed)
        c = src[i]
        here = _line(src, i)
        if c in _SPACE:
            i += 1
            spaced = True
            continue
        if closed is not None:  # "}}" inside parentheses
            raise TemplateError(f"line {here}: unclosed left paren")
        tok, i = _lex_token(src, i, here, spaced)
        if tok.kind == "lparen":
            depth += 1
        elif tok.kind == "rparen":
            depth -= 1
            if depth < 0:
                raise TemplateError(f"line {here}: unexpected right paren")
        tokens.append(tok)
        spaced = False


def _lex_token(src: str, i: int, line: int, spaced: bool) -> tuple[Token, int]:
    c = src[i]
    if src.startswith(":=", i):
        return Token("declare", None, line, spaced), i + 2
    simple = {"=": "assign", "|": "pipe", "(": "lparen", ")": "rparen", ",": "comma"}
    if c in simple:
        return Token(simple[c], None, line, spaced), i + 1  # type: ignore[arg-type]
    if c == '"':
        j = i + 1
        while j < len(src) and src[j] != '"':
            if src[j] == "\n":
                break
            j += 2 if src[j] == "\\" else 1
        if j >= len(src) or src[j] != '"':
            raise TemplateError(f"line {line}: unterminated quoted string")
        return Token("string", _unquote(src[i + 1 : j], line), line, spaced), j + 1
    if c == "`":
        j = src.find("`", i + 1)
        if j < 0:
            raise TemplateError(f"line {line}: unterminated raw quoted string")
        return Token("string", src[i + 1 : j], line, spaced), j + 1
    if c == "'":
        m = re.compile(r"'(\\.[^']*|[^'\\])'").match(src, i)
        if m is None:
            raise TemplateError(f"line {line}: unterminated character constant")
        return Token("number", ord(_unquote(m.group(1), line)), line, spaced), m.end()
    if c == "$":
        m = _VAR.match(src, i)
        assert m is not None
        return Token("var", m.group(), line, spaced), m.end()
    if c == "." and (i + 1 >= len(src) or not src[i + 1].isdigit()):
        m = _FIELDS.match(src, i)
        if m is None:
            return Token("dot", None, line, spaced), i + 1
        return Token("field", tuple(m.group()[1:].split(".")), line, spaced), m.end()
    m = _NUMBER.match(src, i)
    if m is not None and (c.isdigit() or c in "+-."):
        return Token("number", _number(m.group(), line), line, spaced), m.end()
    m = _IDENT.match(src, i)
    if m is not None:
        word = m.group()
        if word in ("true", "false"):
            return Token("bool", word == "true", line, spaced), m.end()
        if word == "nil":
            return Token("nil", None, line, spaced), m.end()
        kind: Kind = "keyword" if word in KEYWORDS else "ident"
        return Token(kind, word, line, spaced), m.end()
    raise TemplateError(f"line {line}: unexpected {c!r} in command")
