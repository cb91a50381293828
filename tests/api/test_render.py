"""Go's value formats that /api/show and timestamps rely on."""

from __future__ import annotations

from datetime import datetime, timezone

from llmd.api.render import format_parameters, go_value, rfc3339, trim_arrays


def test_parameters_print_as_go_percent_v_padded_to_30() -> None:
    text = format_parameters({"temperature": 0.2, "num_ctx": 4096.0, "stop": ["<|im_end|>", "x"]})
    assert text.splitlines() == [
        f"{'num_ctx':<30} 4096",
        f"{'stop':<30} \"<|im_end|>\"",
        f"{'stop':<30} \"x\"",
        f"{'temperature':<30} 0.2",
    ]


def test_go_values_of_each_json_type() -> None:
    assert go_value(True) == "true"
    assert go_value(1.0) == "1"
    assert go_value(0.25) == "0.25"
    assert go_value('say "hi"') == '"say \\"hi\\""'


def test_timestamps_are_rfc3339_utc_without_trailing_zeros() -> None:
    moment = datetime(2024, 7, 22, 20, 47, 51, 147560, tzinfo=timezone.utc)
    assert rfc3339(moment) == "2024-07-22T20:47:51.14756Z"
    assert rfc3339(moment.replace(microsecond=0)) == "2024-07-22T20:47:51Z"


def test_long_arrays_are_emptied_unless_verbose() -> None:
    info = {"tokens": list(range(10)), "short": [1, 2], "name": "x", "raw": b"abc"}
    assert trim_arrays(info, verbose=False) == {"tokens": [], "short": [1, 2], "name": "x", "raw": "abc"}
    assert trim_arrays(info, verbose=True)["tokens"] == list(range(10))
