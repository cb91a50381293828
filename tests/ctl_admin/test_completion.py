"""`llmctl completion bash` and --help: generated from the argparse table, so never stale."""

from __future__ import annotations

import subprocess
import sys

from llmctl.commands.completion import bash_script
from llmctl.parser import build_parser


def test_the_bash_completion_script_is_valid_bash_and_names_every_command() -> None:
    script = bash_script(build_parser())
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0
    for command in ("run", "ps", "stop", "serve", "status", "load", "unload", "reload", "list"):
        assert f"        {command}) opts=" in script
    assert 'load) opts="-h --help --json --keep-alive"' in script
    assert script.rstrip().endswith("complete -o default -F _llmctl llmctl")


def test_completion_needs_no_daemon_and_every_command_has_help() -> None:
    out = subprocess.run([sys.executable, "-m", "llmctl", "completion", "bash"],
                         capture_output=True, text=True, env={"OLLAMA_HOST": "127.0.0.1:9"})
    assert out.returncode == 0 and "_llmctl()" in out.stdout
    for command in ("run", "ps", "stop", "serve", "status", "load", "unload", "reload"):
        help_out = subprocess.run([sys.executable, "-m", "llmctl", command, "--help"],
                                  capture_output=True, text=True)
        assert help_out.returncode == 0 and help_out.stdout.startswith(f"usage: llmctl {command}")
