"""llmctl's entry point: parse, check the daemon is up, run the command, report errors once."""

from __future__ import annotations

import sys
from typing import Sequence

from llmctl.client import Client
from llmctl.errors import ExitCode, report
from llmctl.parser import build_parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with Client() as client:
            if getattr(args, "needs_server", True):
                client.heartbeat()
            args.func(args, client)
    except (Exception, KeyboardInterrupt) as exc:
        message, code = report(exc)
        if message:
            print(message, file=sys.stderr)
        return int(code)
    return int(ExitCode.OK)


if __name__ == "__main__":
    sys.exit(main())
