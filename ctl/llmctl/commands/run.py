"""User commands over HTTP, as Ollama's CLI has them: run (one-shot or the REPL), ps, stop, serve."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from typing import Any, TextIO

from llmctl.client import Client
from llmctl.errors import ServerError
from llmctl.format import human_bytes, human_time, parse_time, table
from llmd.errors import LlmdError

PROMPT = ">>> "
CONTINUATION = "... "
FENCE = '"""'
SHOW_TOPICS = ("info", "license", "modelfile", "parameters", "system", "template")

HELP = """Available Commands:
  /set            Set session variables
  /show           Show model information
  /clear          Clear session context
  /bye            Exit
  /?, /help       Help for a command

Use \"\"\" to begin a multi-line message."""

SET_HELP = """Available Commands:
  /set parameter ...     Set a parameter
  /set system <string>   Set system message"""

SHOW_HELP = """Available Commands:
  /show info         Show details for this model
  /show license      Show model license
  /show modelfile    Show Modelfile for this model
  /show parameters   Show parameters for this model
  /show system       Show system message
  /show template     Show prompt template"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "run", help="run a model",
        description="Chat with a model: interactively, or once with PROMPT or piped stdin.",
    )
    p.add_argument("name", metavar="NAME")
    p.add_argument("prompt", nargs="*", metavar="PROMPT")
    p.add_argument("--keepalive", metavar="D", help='how long to keep the model loaded ("5m")')
    p.add_argument("--format", metavar="FORMAT", help='response format, e.g. "json"')
    p.add_argument("--verbose", action="store_true", help="show timings after each answer")
    p.set_defaults(func=run)

    p = subparsers.add_parser("ps", help="list running models",
                              description="List the models llmd holds in memory.")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="also show the CPU variant and features each runner computes with")
    p.set_defaults(func=ps)

    p = subparsers.add_parser("stop", help="stop a running model",
                              description="Unload a model now (a generate with keep_alive 0).")
    p.add_argument("name", metavar="NAME")
    p.set_defaults(func=stop)

    p = subparsers.add_parser("serve", aliases=["start"], help="start llmd (same as `llmd serve`)",
                              description="Serve the API on OLLAMA_HOST, as `llmd serve` does.")
    p.add_argument("--config", metavar="PATH", help="YAML configuration file")
    p.set_defaults(func=serve, needs_server=False)


# --- ps, stop, serve -------------------------------------------------------------------------


def _processor(size: int, vram: int) -> str:
    if size <= 0:
        return "Unknown"
    if vram == 0:
        return "100% CPU"
    if vram >= size:
        return "100% GPU"
    gpu = round(vram * 100 / size)
    return f"{100 - gpu}%/{gpu}% CPU/GPU"


def _until(text: str | None) -> str:
    if not text:
        return "Forever"
    moment = parse_time(text)
    if moment < datetime.now(timezone.utc):
        return "Stopping..."
    return human_time(moment)


def ps(args: argparse.Namespace, client: Client) -> None:
    rows = []
    for m in client.get("/api/ps").get("models") or []:
        size = int(m.get("size", 0))
        row = [
            m.get("name", ""), str(m.get("digest", ""))[:12], human_bytes(size),
            _processor(size, int(m.get("size_vram", 0))), str(m.get("context_length", "")),
            _until(m.get("expires_at")),
        ]
        if args.verbose:
            cpu = m.get("cpu") or {}
            row += [str(cpu.get("variant", "")), " ".join(cpu.get("features") or [])]
        rows.append(row)
    headers = ["NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL"]
    print(table(headers + (["CPU", "FEATURES"] if args.verbose else []), rows))


def stop(args: argparse.Namespace, client: Client) -> None:
    try:
        client.post("/api/generate", {"model": args.name, "keep_alive": 0, "stream": False})
    except ServerError as exc:
        if "not found" in exc.message:
            raise ServerError(exc.status, f'couldn\'t find model "{args.name}" to stop') from None
        raise


def serve(args: argparse.Namespace, client: Client) -> None:
    from llmd.__main__ import main as llmd_main

    code = llmd_main(["serve", *(["--config", args.config] if args.config else [])])
    if code:
        raise SystemExit(code)


# --- run ---------------------------------------------------------------------------------


class Session:
    """One conversation: the history, the system message and the /set parameters."""

    def __init__(self, client: Client, args: argparse.Namespace, out: TextIO) -> None:
        self.client = client
        self.model = args.name
        self.keep_alive = args.keepalive
        self.format = args.format
        self.verbose = args.verbose
        self.out = out
        self.system: str | None = None
        self.options: dict[str, Any] = {}
        self.messages: list[dict[str, str]] = []

    def body(self) -> dict[str, Any]:
        messages = ([{"role": "system", "content": self.system}] if self.system else [])
        body: dict[str, Any] = {"model": self.model, "messages": messages + self.messages}
        if self.options:
            body["options"] = self.options
        if self.keep_alive:
            body["keep_alive"] = self.keep_alive
        if self.format:
            body["format"] = self.format
        return body

    def chat(self, text: str) -> None:
        """Stream one answer; Ctrl-C stops it (the turn is dropped) and returns to the prompt."""
        self.messages.append({"role": "user", "content": text})
        answer: list[str] = []
        stream = self.client.stream("/api/chat", self.body())
        try:
            for event in stream:
                piece = (event.get("message") or {}).get("content", "")
                if piece:
                    answer.append(piece)
                    self.out.write(piece)
                    self.out.flush()
                if event.get("done") and self.verbose:
                    self._timings(event)
        except KeyboardInterrupt:
            stream.close()  # closes the HTTP response: llmd cancels the generation
            self.messages.pop()
            self.out.write("\n")
            return
        except BaseException:
            self.messages.pop()
            raise
        self.messages.append({"role": "assistant", "content": "".join(answer)})
        self.out.write("\n")
        self.out.flush()

    def _timings(self, event: dict[str, Any]) -> None:
        count, duration = event.get("eval_count", 0), event.get("eval_duration", 0)
        rate = count / (duration / 1e9) if duration else 0.0
        print(f"\neval count: {count} token(s)\neval rate: {rate:.2f} tokens/s",
              file=sys.stderr, end="")


def _show(session: Session, topic: str) -> None:
    info = session.client.post("/api/show", {"model": session.model})
    if topic == "info":
        details = info.get("details") or {}
        model_info = info.get("model_info") or {}
        arch = details.get("family") or model_info.get("general.architecture", "")
        context = model_info.get(f"{arch}.context_length", "")
        rows = [["architecture", str(arch)], ["parameters", str(details.get("parameter_size", ""))],
                ["context length", str(context)],
                ["quantization", str(details.get("quantization_level", ""))]]
        print("  Model\n" + "\n".join("    " + line for line in table(["", ""], rows).splitlines()[1:]))
        return
    value = info.get(topic)
    if topic == "system" and session.system is not None:
        value = session.system
    if topic == "parameters" and session.options:
        extra = "\n".join(f"{k} {json.dumps(v) if isinstance(v, str) else v}"
                          for k, v in session.options.items())
        value = f"{value}\n{extra}" if value else extra
    if not value:
        print(f"No {topic} was specified for this model.")
        return
    print(value if isinstance(value, str) else json.dumps(value, indent=2))


def _set(session: Session, rest: str) -> None:
    what, _, value = rest.partition(" ")
    if what == "parameter":
        key, _, raw = value.strip().partition(" ")
        if not key or not raw.strip():
            print("Usage:\n  /set parameter <name> <value>")
            return
        from llmd.runner.options import check_parameter

        try:
            typed = check_parameter(key, raw.strip().split())
        except LlmdError as exc:
            print(f"Error: {exc.message}")
            return
        session.options[key] = typed
        print(f"Set parameter '{key}' to '{raw.strip()}'")
    elif what == "system":
        session.system = value.strip().strip('"')
        print("Set system message.")
    else:
        print(SET_HELP)


def _command(session: Session, line: str) -> bool:
    """Run a /command; False means leave the REPL."""
    name, _, rest = line.partition(" ")
    if name in ("/bye", "/exit"):
        return False
    if name in ("/?", "/help"):
        print(HELP)
    elif name == "/clear":
        session.messages.clear()
        print("Cleared session context")
    elif name == "/set":
        _set(session, rest.strip())
    elif name == "/show":
        topic = rest.strip()
        if topic in SHOW_TOPICS:
            _show(session, topic)
        else:
            print(SHOW_HELP)
    else:
        print(f"Unknown command '{name}'. Type /? for help")
    return True


def _read_message(first: str) -> str:
    """A line, or everything between a pair of triple quotes across lines."""
    if not first.startswith(FENCE):
        return first
    text = first[len(FENCE):]
    lines: list[str] = []
    while True:
        if text.endswith(FENCE):
            lines.append(text[: -len(FENCE)])
            return "\n".join(lines).strip("\n")
        lines.append(text)
        text = input(CONTINUATION)


def repl(session: Session) -> None:
    while True:
        try:
            line = input(PROMPT)
            message = _read_message(line)
        except EOFError:
            print()
            return
        except KeyboardInterrupt:
            print("\nUse Ctrl + d or /bye to exit.")
            continue
        if not message.strip():
            continue
        if message.startswith("/") and not line.startswith(FENCE):
            if not _command(session, message.strip()):
                return
            continue
        session.chat(message)


def run(args: argparse.Namespace, client: Client) -> None:
    client.post("/api/show", {"model": args.name})  # a missing model fails here, before any I/O
    session = Session(client, args, sys.stdout)
    prompt = " ".join(args.prompt)
    if not sys.stdin.isatty():
        piped = sys.stdin.read()
        prompt = f"{piped} {prompt}".strip() if prompt else piped
        session.chat(prompt)
        return
    if prompt:
        session.chat(prompt)
        return
    preload: dict[str, Any] = {"model": args.name, "stream": False}
    if args.keepalive:
        preload["keep_alive"] = args.keepalive
    client.post("/api/generate", preload)
    try:
        import readline  # noqa: F401  (line editing and history for input())
    except ImportError:
        pass
    repl(session)
