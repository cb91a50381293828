"""Logging for llmd: native journald records under systemd, readable lines everywhere else.

Under systemd, stderr is a stream to journald and ``$JOURNAL_STREAM`` names it (``dev:ino``); only
then do records go through the journal's native protocol, so each ``extra={...}`` value becomes a
field of its own (``journalctl -o verbose``, ``journalctl MODEL=smollm2:135m``). Started by hand,
in tests or redirected, stderr gets one line per record::

    2026-11-24 17:30:01,123 INFO llmd.server: listening ADDRESS=http://127.0.0.1:11434

Field names are the ``extra`` keys in UPPERCASE: journald silently drops lowercase fields, so a
key written ``model`` or ``MODEL`` arrives as ``MODEL`` either way. uvicorn's own loggers
propagate to the same root handler (``uvicorn.Config(log_config=None)``).
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Callable
from typing import Any, TextIO

SYSLOG_IDENTIFIER = "llmd"

# syslog's NOTICE (priority 5), between INFO and WARNING, which Python's logging lacks: normal
# but significant, such as a refused API key. ``log.log(NOTICE, ...)``.
NOTICE = 25
_SYSLOG_NOTICE = 5
logging.addLevelName(NOTICE, "NOTICE")

# Attributes every LogRecord has; everything else on a record came from ``extra=``.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "taskName",
    "color_message",  # uvicorn's ANSI-coloured duplicate of the message
}
_FIELD_NAME = re.compile(r"[A-Z0-9][A-Z0-9_]*\Z")


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The ``extra`` values of a record as journal fields: UPPERCASE names, None left out."""
    fields: dict[str, Any] = {}
    for key, value in vars(record).items():
        if key in _RECORD_ATTRS or value is None:
            continue
        name = key.upper()
        if _FIELD_NAME.match(name):
            fields[name] = value
    return fields


def stderr_is_journal(environ: dict[str, str] | None = None) -> bool:
    """Whether fd 2 is the stream systemd connected to journald (systemd.exec(5) $JOURNAL_STREAM)."""
    # Protocol variable set by systemd for this process, not a setting, so it is read here and
    # not in config.py.
    value = (os.environ if environ is None else environ).get("JOURNAL_STREAM", "")
    dev, _, ino = value.partition(":")
    if not dev.isdigit() or not ino.isdigit():
        return False
    try:
        st = os.fstat(2)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == (int(dev), int(ino))


class LineFormatter(logging.Formatter):
    """``time level logger: message KEY=value ...`` for a terminal or a log file."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = record_fields(record)
        fields.pop("MESSAGE_ID", None)  # an opaque id helps journalctl, not a reader
        if not fields:
            return line
        rendered = " ".join(f"{k}={_quote(v)}" for k, v in fields.items())
        head, sep, tail = line.partition("\n")  # keep a traceback below the fields
        return f"{head} {rendered}{sep}{tail}"


def _quote(value: Any) -> str:
    text = str(value)
    if not text or any(c.isspace() or c in "\"=" for c in text):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


Sender = Callable[..., Any]


def _journal_send() -> Sender:
    from systemd import journal

    return journal.send  # type: ignore[no-any-return]


class JournalHandler(logging.Handler):
    """Native journal records with the record's ``extra`` values as UPPERCASE fields.

    python-systemd's own JournalHandler forwards ``record.__dict__`` unfiltered, so lowercase keys
    are lost and internal attributes (``args``, ``msecs``...) travel with every record; this one
    sends only the fields worth keeping. ``sender_function`` is the test seam, as upstream.
    """

    def __init__(
        self,
        level: int = logging.NOTSET,
        sender_function: Sender | None = None,
        **fields: str,
    ) -> None:
        super().__init__(level)
        for name in fields:
            if not _FIELD_NAME.match(name):
                raise ValueError(f"invalid journal field name: {name}")
        self.send = sender_function or _journal_send()
        self.fields = {"SYSLOG_IDENTIFIER": SYSLOG_IDENTIFIER, **fields}

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from systemd.journal import JournalHandler as Upstream

            message = record.getMessage()
            fields = {**self.fields, **record_fields(record)}
            if record.exc_info:
                fields["EXCEPTION_TEXT"] = logging.Formatter().formatException(record.exc_info)
            priority = (
                _SYSLOG_NOTICE if record.levelno == NOTICE else Upstream.map_priority(record.levelno)
            )
            self.send(
                message,
                PRIORITY=str(priority),
                LOGGER=record.name,
                THREAD_NAME=record.threadName,
                CODE_FILE=record.pathname,
                CODE_LINE=record.lineno,
                CODE_FUNC=record.funcName,
                **{k: _field_value(v) for k, v in fields.items()},
            )
        except Exception:  # noqa: BLE001 - logging.Handler contract: report, never raise
            self.handleError(record)


def _field_value(value: Any) -> Any:
    return value if isinstance(value, (str, bytes)) else str(value)


def level_for(debug: int) -> int:
    """OLLAMA_DEBUG: 0 is INFO, anything higher is DEBUG."""
    return logging.DEBUG if debug > 0 else logging.INFO


def setup_logging(
    debug: int,
    *,
    journal: bool | None = None,
    stream: TextIO | None = None,
    sender_function: Sender | None = None,
) -> logging.Handler:
    """Install llmd's one root handler (replacing any) and return it.

    ``journal`` None means: the journal when stderr is connected to it. Library loggers that
    chatter at DEBUG (httpx's connection pool, asyncio) stay at INFO unless debug is 2 or more.
    """
    if journal is None:
        journal = stderr_is_journal()
    handler: logging.Handler
    if journal:
        handler = JournalHandler(sender_function=sender_function)
    else:
        handler = logging.StreamHandler(stream or sys.stderr)
        handler.setFormatter(LineFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    set_level(debug)
    # uvicorn.Config(log_config=None) leaves these alone; make sure they reach the root handler.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    return handler


def set_level(debug: int) -> None:
    """Apply the log level for ``debug`` now (at start and on reload)."""
    logging.getLogger().setLevel(level_for(debug))
    quiet = logging.DEBUG if debug >= 2 else logging.INFO
    for name in ("httpcore", "httpx", "asyncio"):
        logging.getLogger(name).setLevel(quiet)
