"""Logging: native journal records with UPPERCASE fields, readable lines elsewhere."""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterator
from typing import Any

import pytest
from llmd.system import messages
from llmd.system.journal import JournalHandler, setup_logging, stderr_is_journal


class Sent:
    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def __call__(self, message: str, **fields: Any) -> None:
        self.records.append({"MESSAGE": message, **fields})


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def test_journal_records_carry_extra_values_as_uppercase_fields() -> None:
    sent = Sent()
    log = logging.getLogger("llmd.test.journal")
    handler = JournalHandler(sender_function=sent)
    log.addHandler(handler)
    try:
        log.warning("model loaded %s", "now", extra={
            "MESSAGE_ID": messages.MODEL_LOADED, "model": "smollm2:135m", "REQUEST_ID": "abc",
            "SIZE": 1234,
        })
    finally:
        log.removeHandler(handler)
    [record] = sent.records
    assert record["MESSAGE"] == "model loaded now"
    assert record["MESSAGE_ID"] == messages.MODEL_LOADED
    assert record["MODEL"] == "smollm2:135m"  # lowercase key, still kept
    assert record["REQUEST_ID"] == "abc"
    assert record["SIZE"] == "1234"
    assert record["PRIORITY"] == "4"
    assert record["SYSLOG_IDENTIFIER"] == "llmd"
    assert record["LOGGER"] == "llmd.test.journal"
    assert not {"msg", "args", "levelname", "MSG", "ARGS"} & set(record)


def test_journal_records_carry_the_traceback_of_an_exception() -> None:
    sent = Sent()
    log = logging.getLogger("llmd.test.journal.exc")
    handler = JournalHandler(sender_function=sent)
    log.addHandler(handler)
    try:
        try:
            raise ValueError("broken")
        except ValueError:
            log.exception("runner crashed", extra={"MESSAGE_ID": messages.RUNNER_CRASHED})
    finally:
        log.removeHandler(handler)
    [record] = sent.records
    assert "ValueError: broken" in record["EXCEPTION_TEXT"]
    assert record["PRIORITY"] == "3"


def test_journal_handler_refuses_an_invalid_fixed_field_name() -> None:
    with pytest.raises(ValueError, match="invalid journal field name"):
        JournalHandler(sender_function=Sent(), lower="x")


def test_message_ids_are_distinct_128_bit_hex() -> None:
    ids = list(messages.ALL.values())
    assert len(set(ids)) == len(ids)
    assert {"MODEL_LOADED", "MODEL_UNLOADED", "MODEL_EVICTED", "RUNNER_CRASHED", "CONFIG_RELOADED",
            "READY", "STOPPING", "REQUEST"} <= set(messages.ALL)
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


def test_stderr_lines_show_time_level_logger_message_and_fields(restore_root: None) -> None:
    stream = io.StringIO()
    setup_logging(0, journal=False, stream=stream)
    logging.getLogger("llmd.test.lines").info(
        "listening", extra={"ADDRESS": "http://127.0.0.1:11434", "note": "two words",
                            "MESSAGE_ID": messages.READY})
    logging.getLogger("llmd.test.lines").debug("hidden at debug 0")
    line = stream.getvalue()
    assert " INFO llmd.test.lines: listening ADDRESS=http://127.0.0.1:11434 NOTE=\"two words\"" in line
    assert messages.READY not in line
    assert "hidden" not in line


def test_debug_setting_lowers_the_level_and_uvicorn_logs_through_the_same_handler(
    restore_root: None,
) -> None:
    sent = Sent()
    setup_logging(1, journal=True, sender_function=sent)
    logging.getLogger("llmd.test.debug").debug("visible at debug 1")
    logging.getLogger("uvicorn.error").info("Started server process")
    assert [r["MESSAGE"] for r in sent.records] == ["visible at debug 1", "Started server process"]


def test_stderr_is_the_journal_only_when_journal_stream_names_fd_2() -> None:
    st = os.fstat(2)
    assert stderr_is_journal({"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
    assert not stderr_is_journal({"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino + 1}"})
    assert not stderr_is_journal({"JOURNAL_STREAM": "garbage"})
    assert not stderr_is_journal({})
