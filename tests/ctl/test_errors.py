"""Every failure of llmctl is one line and an exit code, decided in one place."""

from __future__ import annotations

import httpx

from llmctl.errors import DaemonUnreachable, ExitCode, ServerError, report
from llmd.errors import ModelfileError


def test_an_unreachable_daemon_names_the_address() -> None:
    line, code = report(DaemonUnreachable("http://127.0.0.1:11434"))
    assert line == "llmctl: could not connect to llmd at http://127.0.0.1:11434: is it running?"
    assert code == ExitCode.UNREACHABLE


def test_server_and_client_side_errors_read_like_ollama() -> None:
    assert report(ServerError(404, "model 'x' not found")) == ("Error: model 'x' not found", ExitCode.ERROR)
    assert report(ModelfileError("unknown parameter 'bogus'", 3)) == (
        "Error: line 3: unknown parameter 'bogus'", ExitCode.ERROR
    )


def test_a_missing_file_is_one_line() -> None:
    line, code = report(FileNotFoundError(2, "No such file or directory", "Modelfile"))
    assert line == "Error: Modelfile: no such file or directory"
    assert code == ExitCode.ERROR


def test_a_dropped_connection_is_one_line() -> None:
    line, _ = report(httpx.ReadError("connection reset"))
    assert line.startswith("Error: lost the connection to llmd")


def test_an_unexpected_exception_asks_for_a_report_with_the_traceback() -> None:
    line, code = report(ZeroDivisionError("division by zero"))
    assert line.startswith("llmctl: unexpected error, please report it:")
    assert "ZeroDivisionError" in line
    assert code == ExitCode.ERROR


def test_ctrl_c_is_silent_with_130() -> None:
    assert report(KeyboardInterrupt()) == ("", ExitCode.INTERRUPTED)
