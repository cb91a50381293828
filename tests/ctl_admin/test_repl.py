"""`llmctl run` as a person uses it: through a pty, against a live llmd with SmolLM2."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from harness import LiveServer, create_smollm2, live_server

DEADLINE = 240.0  # seconds for any expected output; a hang guard, not a timing assertion


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, gguf_path: Path) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("repl")) as live:
        create_smollm2(live.url, gguf_path)
        yield live


class Terminal:
    def __init__(self, server: LiveServer, *args: str) -> None:
        self.fd, child = pty.openpty()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "llmctl", "run", "smollm2:135m", *args],
            stdin=child, stdout=child, stderr=child, env={**server.env, "TERM": "dumb"},
            start_new_session=True,
        )
        os.close(child)
        self.seen = ""

    def expect(self, text: str) -> str:
        deadline = time.monotonic() + DEADLINE
        while text not in self.seen:
            assert time.monotonic() < deadline, f"never saw {text!r} in {self.seen!r}"
            ready, _, _ = select.select([self.fd], [], [], 1.0)
            if ready:
                try:
                    self.seen += os.read(self.fd, 4096).decode(errors="replace")
                except OSError:
                    break
        assert text in self.seen, self.seen
        before, _, self.seen = self.seen.partition(text)
        return before

    def send(self, text: str) -> None:
        os.write(self.fd, text.encode())

    def close(self) -> int:
        # Wait before closing our end: a REPL still echoing its goodbye into a closed pty gets EIO.
        try:
            return self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()
        finally:
            os.close(self.fd)


def test_the_repl_takes_settings_multi_line_input_and_survives_ctrl_c(server: LiveServer) -> None:
    term = Terminal(server)
    try:
        term.expect(">>> ")
        term.send("/set parameter num_predict 8\r")
        term.expect("Set parameter 'num_predict' to '8'")
        term.send("/set parameter bogus 1\r")
        term.expect("Error: unknown parameter 'bogus'")
        term.send('"""Say hello\r')
        term.expect("... ")
        term.send('to me"""\r')
        answer = term.expect(">>> ")
        assert answer.strip()
        term.send("/set parameter num_predict 400\r")
        term.expect(">>> ")
        term.send("Write a long story about a dragon.\r")
        time.sleep(0.5)  # let it start answering; the outcome does not depend on how far it got
        os.killpg(term.process.pid, signal.SIGINT)
        term.expect(">>> ")
        assert term.process.poll() is None
        term.send("/show parameters\r")
        term.expect("num_predict 400")
        term.send("/nonsense\r")
        term.expect("Unknown command '/nonsense'. Type /? for help")
        term.send("/bye\r")
        assert term.close() == 0
    finally:
        if term.process.poll() is None:
            term.process.kill()


def test_ctrl_d_leaves_the_repl(server: LiveServer) -> None:
    term = Terminal(server)
    term.expect(">>> ")
    term.send("\x04")
    assert term.close() == 0


def test_a_prompt_argument_or_piped_stdin_is_a_one_shot_run(server: LiveServer) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "llmctl", "run", "smollm2:135m", "Say hi"],
        input="", capture_output=True, text=True, env=server.env, timeout=DEADLINE,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip()
    piped = subprocess.run(
        [sys.executable, "-m", "llmctl", "run", "smollm2:135m"],
        input="Say hi", capture_output=True, text=True, env=server.env, timeout=DEADLINE,
    )
    assert piped.returncode == 0 and piped.stdout.strip()
    assert ">>>" not in piped.stdout


def test_ps_lists_the_model_and_stop_unloads_it(server: LiveServer) -> None:
    env = server.env
    ps = subprocess.run([sys.executable, "-m", "llmctl", "ps"], capture_output=True, text=True,
                        env=env, timeout=DEADLINE)
    assert ps.stdout.splitlines()[0].split() == ["NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT",
                                                 "UNTIL"]
    assert "smollm2:135m" in ps.stdout
    stop = subprocess.run([sys.executable, "-m", "llmctl", "stop", "smollm2:135m"],
                          capture_output=True, text=True, env=env, timeout=DEADLINE)
    assert stop.returncode == 0, stop.stderr
    missing = subprocess.run([sys.executable, "-m", "llmctl", "stop", "nosuch:1"],
                             capture_output=True, text=True, env=env, timeout=DEADLINE)
    assert missing.stderr.strip() == 'Error: couldn\'t find model "nosuch:1" to stop'
