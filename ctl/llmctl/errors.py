"""Every failure of llmctl becomes one line on stderr and an exit code, here and nowhere else.

    CtlError                  raised by llmctl itself
    ├── DaemonUnreachable     nothing answers HEAD / at the address
    └── ServerError           llmd answered with {"error": ...} (a status, or a stream line)

LlmdError from the shared llmd code run client-side (Modelfile parsing, model names) and
OSError (a missing Modelfile) are reported the same way; anything else is a bug and says so.
"""

from __future__ import annotations

import enum
import traceback

import httpx

from llmd.errors import LlmdError


class ExitCode(enum.IntEnum):
    OK = 0
    ERROR = 1  # the request failed: llmd's message is printed
    USAGE = 2  # argparse's own code for bad arguments
    UNREACHABLE = 3  # no llmd at the address, or not running on the system bus
    ACCESS_DENIED = 4  # llmd refused an admin command (D-Bus)
    TIMEOUT = 5  # llmd did not answer an admin command in time (D-Bus)
    NOT_INSTALLED = 6  # no llmd on the system bus and no activation file for it
    INTERRUPTED = 130  # 128 + SIGINT, as shells report it


class CtlError(Exception):
    exit_code: ExitCode = ExitCode.ERROR  # subclasses with their own line (bus_client.py) set it


class DaemonUnreachable(CtlError):
    def __init__(self, url: str) -> None:
        super().__init__(f"llmctl: could not connect to llmd at {url}: is it running?")
        self.url = url


class ServerError(CtlError):
    """An error reported by llmd; ``status`` is 200 for an error line inside a stream."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def report(exc: BaseException) -> tuple[str, ExitCode]:
    """The line to print and the exit code for an exception that ended a command."""
    if isinstance(exc, KeyboardInterrupt):
        return "", ExitCode.INTERRUPTED
    if isinstance(exc, DaemonUnreachable):
        return str(exc), ExitCode.UNREACHABLE
    if isinstance(exc, ServerError) and exc.status == 401:
        return (
            f"Error: {exc.message}: this llmd wants an API key; set OLLAMA_API_KEY to one "
            "(an admin makes them with `llmctl key add NAME`)"
        ), ExitCode.ERROR
    if isinstance(exc, ServerError):
        return f"Error: {exc.message}", ExitCode.ERROR
    if isinstance(exc, CtlError):
        return str(exc), exc.exit_code
    if isinstance(exc, LlmdError):
        return f"Error: {exc.message}", ExitCode.ERROR
    if isinstance(exc, OSError) and exc.strerror:
        where = f"{exc.filename}: " if exc.filename else ""
        return f"Error: {where}{exc.strerror.lower()}", ExitCode.ERROR
    if isinstance(exc, httpx.TransportError):
        return f"Error: lost the connection to llmd: {exc}", ExitCode.ERROR
    detail = "".join(traceback.format_exception(exc)).rstrip()
    return f"llmctl: unexpected error, please report it:\n{detail}", ExitCode.ERROR
