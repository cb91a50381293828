"""Modelfiles: parse the text (Ollama's parser/parser.go syntax) and render it back for /api/show.

Syntax: ``INSTRUCTION args`` per line, instructions case-insensitive, ``#`` comment lines, values
bare to the end of the line, ``"quoted"`` or ``\"\"\"multi-line\"\"\"``. Errors are ModelfileError
carrying the line number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from llmd.errors import InvalidModelName, InvalidOption, ModelfileError
from llmd.runner.options import check_parameter
from llmd.store.models import Message, Model
from llmd.store.names import ModelName

ROLES = ("system", "user", "assistant")
_COMMANDS = ("from", "license", "template", "system", "adapter", "parameter", "message", "requires")
_INVALID_COMMAND = (
    'command must be one of "from", "license", "template", "system", "adapter", '
    '"parameter", or "message"'
)
_INSTRUCTION = re.compile(r"[ \t]*([A-Za-z]+)(?=[ \t\r\n]|$)")
_WORD = re.compile(r"[ \t]*([^ \t\r\n]+)")


@dataclass(frozen=True, slots=True)
class Modelfile:
    from_: str
    parameters: dict[str, object] = field(default_factory=dict)
    template: str | None = None
    system: str | None = None
    messages: tuple[Message, ...] = ()
    license: tuple[str, ...] = ()
    adapters: tuple[str, ...] = ()
    requires: str | None = None


class _Scanner:
    """Walks the text, handing out values; knows the line number of any position."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def line(self, pos: int | None = None) -> int:
        return self.text.count("\n", 0, self.pos if pos is None else pos) + 1

    def rest_of_line(self) -> str:
        end = self.text.find("\n", self.pos)
        end = len(self.text) if end < 0 else end
        chunk = self.text[self.pos:end]
        self.pos = min(end + 1, len(self.text)) if end < len(self.text) else end
        return chunk

    def word(self) -> str | None:
        m = _WORD.match(self.text, self.pos)
        if m is None:
            return None
        self.pos = m.end()
        return m.group(1)

    def value(self, what: str) -> str:
        """A bare, quoted or triple-quoted value; the position ends after its line."""
        start_line = self.line()
        while self.pos < len(self.text) and self.text[self.pos] in " \t":
            self.pos += 1
        text = self.text
        if text.startswith('"""', self.pos):
            end = text.find('"""', self.pos + 3)
            if end < 0:
                raise ModelfileError(f'unterminated """ in {what}', start_line)
            value = text[self.pos + 3:end]
            self.pos = end + 3
            self._end_of_value(what)
            return value
        if text.startswith('"', self.pos):
            out: list[str] = []
            i = self.pos + 1
            while i < len(text):
                ch = text[i]
                if ch == "\\" and i + 1 < len(text) and text[i + 1] in '"\\':
                    out.append(text[i + 1])
                    i += 2
                    continue
                if ch == '"':
                    self.pos = i + 1
                    self._end_of_value(what)
                    return "".join(out)
                out.append(ch)
                i += 1
            raise ModelfileError(f'unterminated " in {what}', start_line)
        value = self.rest_of_line().strip()
        if not value:
            raise ModelfileError(f"missing value for {what}", start_line)
        return value

    def _end_of_value(self, what: str) -> None:
        trailing = self.rest_of_line()
        if trailing.strip():
            raise ModelfileError(f"unexpected text after the value of {what}", self.line() - 1)


def parse_modelfile(text: str) -> Modelfile:
    """Parse a Modelfile; ModelfileError("line N: ...") on anything malformed."""
    text = text.removeprefix("\ufeff")
    scan = _Scanner(text)
    from_: str | None = None
    params: dict[str, object] = {}
    template = system = requires = None
    messages: list[Message] = []
    licenses: list[str] = []
    adapters: list[str] = []
    while scan.pos < len(text):
        line_start = scan.pos
        end = text.find("\n", line_start)
        stripped = text[line_start:end if end >= 0 else len(text)]
        if not stripped.strip() or stripped.lstrip().startswith("#"):
            scan.rest_of_line()
            continue
        line = scan.line()
        m = _INSTRUCTION.match(text, scan.pos)
        if m is None or m.group(1).lower() not in _COMMANDS:
            raise ModelfileError(_INVALID_COMMAND, line)
        command = m.group(1).lower()
        scan.pos = m.end()
        if command == "parameter":
            key = scan.word()
            if key is None or text[scan.pos - len(key):scan.pos] != key or key.startswith("#"):
                raise ModelfileError("missing parameter name", line)
            raw = scan.value(f"parameter {key}")
            try:
                typed = check_parameter(key.lower(), [raw])
            except InvalidOption as exc:
                raise ModelfileError(exc.message, line) from None
            if typed is None:
                continue
            if key.lower() == "stop":
                stops = params.setdefault("stop", [])
                assert isinstance(stops, list)
                stops.extend(typed)  # type: ignore[arg-type]
            else:
                params[key.lower()] = typed
        elif command == "message":
            role = scan.word()
            if role is None or role.lower() not in ROLES:
                raise ModelfileError('role must be one of "system", "user", or "assistant"', line)
            messages.append(Message(role.lower(), scan.value("message")))
        else:
            value = scan.value(command)
            if command == "from":
                from_ = value
            elif command == "template":
                template = value
            elif command == "system":
                system = value
            elif command == "license":
                licenses.append(value)
            elif command == "adapter":
                adapters.append(value)
            else:
                requires = value
    if from_ is None:
        raise ModelfileError("no FROM line")
    return Modelfile(
        from_=from_,
        parameters=params,
        template=template,
        system=system,
        messages=tuple(messages),
        license=tuple(licenses),
        adapters=tuple(adapters),
        requires=requires,
    )


# --- what a client sends for a Modelfile ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CreateSources:
    """Where a Modelfile's weights come from: a local GGUF to import, or a model to build on."""

    model_file: Path | None  # FROM names a local file
    base: ModelName | None  # FROM names a model
    adapter_files: tuple[Path, ...] = ()


def _looks_like_path(arg: str) -> bool:
    return arg.startswith(("/", "./", "../", "~", ".\\")) or arg.lower().endswith(".gguf")


def _local_path(arg: str, directory: Path) -> Path:
    path = Path(arg).expanduser()
    return path if path.is_absolute() else directory / path


def resolve_sources(modelfile: Modelfile, directory: Path) -> CreateSources:
    """Split FROM/ADAPTER into local files (relative to ``directory``, ``~`` expanded) and names.

    As Ollama's client does, a FROM argument naming an existing file is a file; anything else
    is a model name. ADAPTER must name a file.
    """
    path = _local_path(modelfile.from_, directory)
    model_file: Path | None = None
    base: ModelName | None = None
    if path.is_dir():
        raise ModelfileError(f"{modelfile.from_}: importing a directory (safetensors) is not supported")
    if path.is_file():
        model_file = path
    elif _looks_like_path(modelfile.from_):
        raise ModelfileError(f"{modelfile.from_}: no such file")
    else:
        try:
            base = ModelName.parse(modelfile.from_)
        except InvalidModelName:
            raise ModelfileError(f"FROM {modelfile.from_}: invalid model name") from None
    adapters = []
    for arg in modelfile.adapters:
        adapter = _local_path(arg, directory)
        if not adapter.is_file():
            raise ModelfileError(f"adapter {arg}: no such file")
        adapters.append(adapter)
    return CreateSources(model_file, base, tuple(adapters))


# --- rendering, for /api/show ---------------------------------------------------------------------


def _quote(value: str) -> str:
    """Ollama's parser.quote: only values that would not survive bare get quoted."""
    if not value:
        return '""'
    if "\n" in value or value.startswith((" ", "\t")) or value.endswith((" ", "\t")) or '"' in value:
        return f'"""{value}"""'
    return value


def _param_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def format_modelfile(model: Model) -> str:
    """The ``modelfile`` text of /api/show, as ``ollama show --modelfile`` prints it."""
    lines = [
        '# Modelfile generated by "ollama show"',
        "# To build a new Modelfile based on this, replace FROM with:",
        f"# FROM {model.name.short}",
        "",
        f"FROM {model.model_path}",
    ]
    lines += [f"ADAPTER {path}" for path in model.adapters]
    lines += [f"FROM {path}" for path in model.projectors]
    if model.template is not None:
        lines.append(f"TEMPLATE {_quote(model.template)}")
    if model.system:
        lines.append(f"SYSTEM {_quote(model.system)}")
    for key in sorted(model.parameters):
        value = model.parameters[key]
        for item in value if isinstance(value, (list, tuple)) else (value,):
            lines.append(f"PARAMETER {key} {_quote(_param_text(item))}")
    lines += [f"LICENSE {_quote(text)}" for text in model.license]
    lines += [f"MESSAGE {m.role} {_quote(m.content)}" for m in model.messages]
    return "\n".join(lines) + "\n"
