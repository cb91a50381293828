"""llmctl prints sizes, times and tables the way the ollama CLI does."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from llmctl.format import human_bytes, human_number, human_time, parse_time, table

NOW = datetime(2026, 1, 10, 12, 0, 0, tzinfo=timezone.utc)


def test_sizes_are_decimal_units() -> None:
    assert human_bytes(98_000_000) == "98 MB"
    assert human_bytes(4_700_000_000) == "4.7 GB"
    assert human_bytes(1_000) == "1 KB"
    assert human_bytes(999) == "999 B"
    assert human_bytes(12_345_678) == "12 MB"


def test_parameter_counts_are_short() -> None:
    assert human_number(134_515_008) == "134.52M"
    assert human_number(7_000_000_000) == "7B"
    assert human_number(1_500_000_000) == "1.5B"


def test_times_read_like_ollama() -> None:
    assert human_time(NOW - timedelta(days=2), NOW) == "2 days ago"
    assert human_time(NOW - timedelta(seconds=0.2), NOW) == "Less than a second ago"
    assert human_time(NOW - timedelta(seconds=90), NOW) == "About a minute ago"
    assert human_time(NOW - timedelta(minutes=5), NOW) == "5 minutes ago"
    assert human_time(NOW + timedelta(minutes=4, seconds=30), NOW) == "4 minutes from now"
    assert human_time(NOW + timedelta(days=365 * 300), NOW) == "Forever"


def test_api_timestamps_with_nanoseconds_parse() -> None:
    assert parse_time("2024-07-22T20:47:51.147561123Z") == datetime(
        2024, 7, 22, 20, 47, 51, 147561, tzinfo=timezone.utc
    )
    assert parse_time("2024-07-22T20:47:51Z").tzinfo is not None


def test_tables_are_left_aligned_without_borders() -> None:
    text = table(["NAME", "ID"], [["smollm2:135m", "0123456789ab"]])
    assert text.splitlines() == ["NAME            ID", "smollm2:135m    0123456789ab"]
