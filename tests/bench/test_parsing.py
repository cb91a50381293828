"""The bench harness's parsers: SSE lines, chat chunks, batched-bench output, the table."""

from __future__ import annotations

import ceiling
import compare
import loadgen
import pytest


def test_a_data_line_decodes_to_its_json_object() -> None:
    event = loadgen.parse_sse_line('data: {"choices": [{"delta": {"content": "Hi"}}]}')
    assert event == {"choices": [{"delta": {"content": "Hi"}}]}


def test_the_done_marker_is_recognised() -> None:
    assert loadgen.parse_sse_line("data: [DONE]") == loadgen.DONE


@pytest.mark.parametrize("line", ["", ": keep-alive", "event: message", "id: 7", "data:"])
def test_lines_without_data_carry_nothing(line: str) -> None:
    assert loadgen.parse_sse_line(line) is None


def test_data_that_is_not_an_object_is_an_error() -> None:
    with pytest.raises(TypeError, match="not a JSON object"):
        loadgen.parse_sse_line("data: [1, 2]")


def test_chunk_text_joins_content_of_every_choice_and_ignores_role_and_usage_chunks() -> None:
    assert loadgen.chunk_text({"choices": [{"delta": {"role": "assistant"}}]}) == ""
    assert loadgen.chunk_text({"choices": [], "usage": {"completion_tokens": 3}}) == ""
    assert (
        loadgen.chunk_text({"choices": [{"delta": {"content": "a"}}, {"delta": {"content": "b"}}]})
        == "ab"
    )


def test_an_error_event_in_the_stream_is_raised() -> None:
    with pytest.raises(RuntimeError, match="boom"):
        loadgen.chunk_text({"error": {"message": "boom"}})


def test_decode_rate_counts_the_tokens_after_the_first_over_the_time_between_first_and_last() -> (
    None
):
    stream = loadgen.Stream(sent=0.0, chunk_times=[1.0, 1.5, 2.0], tokens=5, done=2.0)
    assert stream.decode_rate == pytest.approx(4.0)
    assert stream.ttft == pytest.approx(1.0)


def test_a_single_token_has_no_decode_rate() -> None:
    assert loadgen.Stream(sent=0.0, chunk_times=[1.0], tokens=1, done=1.0).decode_rate is None


def test_percentile_of_one_sample_is_that_sample_and_the_median_is_the_middle() -> None:
    assert loadgen.percentile([3.0], 95) == 3.0
    assert loadgen.percentile([1.0, 2.0, 3.0], 50) == pytest.approx(2.0)


BATCHED_BENCH = """\
llama_batched_bench: n_kv_max = 8192, n_batch = 512
{"n_kv_max": 8192, "pp": 32, "tg": 128, "pl": 1, "n_kv": 160, "speed_tg": 103.64, "speed": 124.9}
{"n_kv_max": 8192, "pp": 32, "tg": 128, "pl": 8, "n_kv": 1280, "speed_tg": 402.5, "speed": 410.0}
"""


def test_batched_bench_jsonl_gives_s_tg_by_parallel_sequences() -> None:
    assert ceiling.parse_jsonl(BATCHED_BENCH) == {1: 103.64, 8: 402.5}


def test_batched_bench_output_without_results_is_an_error() -> None:
    with pytest.raises(ValueError, match="no result rows"):
        ceiling.parse_jsonl("llama_batched_bench: error\n")


def test_a_row_shows_the_ratio_and_whether_the_target_is_met() -> None:
    row = compare.Row(
        "decode", 90.0, 100.0, "tok/s", target="≥1.0×", check=compare.ratio_at_least(1.0)
    )
    assert row.cells() == ["decode (tok/s)", "90.0", "100.0", "0.90×", "≥1.0× ✗"]


def test_a_row_without_a_reference_value_has_no_ratio() -> None:
    row = compare.Row("RSS", 60.0, None, "MB", target="< 80 MB", check=compare.value_below(80))
    assert row.cells() == ["RSS (MB)", "60.0", "—", "—", "< 80 MB ✓"]


def test_the_table_is_markdown_with_a_header_rule() -> None:
    lines = compare.render([compare.Row("x", 1.0, 2.0, "s")]).splitlines()
    assert lines[0].startswith("| metric")
    assert set(lines[1]) <= {"|", "-"}
    assert "0.50×" in lines[2]


def _side(rate: float) -> dict[str, object]:
    level = {"aggregate": rate, "tokens": [4, 4], "ttft": [0.1, 0.2], "decode": [rate, None]}
    return {
        "clients_1": level,
        "clients_8": level,
        "ttft": [0.1, 0.2, 0.3],
        "one_token": [0.05],
        "cold": [1.0, 2.0],
        "rss_idle_kib": 60 * 1024,
        "rss_loaded_kib": 61 * 1024,
        "rss_after_kib": 62 * 1024,
    }


def test_the_comparison_table_has_every_metric_with_llmd_over_the_reference() -> None:
    results = {"llmd": _side(50.0), "ref": _side(100.0)}
    rows = {r.metric: r for r in compare.rows(results, {1: 80.0, 8: 200.0}, [1, 8], 4)}
    assert rows["single-client decode"].ratio == pytest.approx(0.5)
    assert rows["aggregate, 8 clients"].cells()[-1] == "≥1.0× ✗"
    assert rows["ceiling: llmd aggregate vs batched-bench S_TG, 8 seq"].ratio == pytest.approx(0.25)
    assert rows["cold start to first token"].llmd == pytest.approx(1.5)
    assert rows["llmd main RSS, idle"].cells()[-1] == "< 80 MB ✓"
    assert rows["tokens per request, mean"].llmd == pytest.approx(4.0)
