"""TextStream: what a client may see of a slot's token bytes."""

from __future__ import annotations

from llmd.runner.textstream import TextStream


def test_a_multibyte_character_split_across_tokens_is_emitted_whole() -> None:
    stream = TextStream(())
    data = "né🙂".encode()
    out = [stream.push(data[i : i + 1]) for i in range(len(data))]
    assert "".join(out) + stream.flush() == "né🙂"
    assert all(part in ("", "n", "é", "🙂") for part in out)


def test_text_that_could_start_a_stop_string_is_held_back_until_it_cannot() -> None:
    stream = TextStream(("</end>",))
    assert stream.push(b"hello </") == "hello "
    assert stream.push(b"em") == "</em"
    assert stream.flush() == ""


def test_a_stop_string_ends_the_stream_and_is_never_emitted() -> None:
    stream = TextStream(("STOP", "halt"))
    assert stream.push(b"one two ST") == "one two "
    assert stream.push(b"OP three") == ""
    assert stream.stopped
    assert stream.push(b"more") == ""
    assert stream.flush() == ""


def test_the_stream_names_the_stop_string_that_ended_it() -> None:
    stream = TextStream(("halt", "STOP"))
    assert stream.stop == ""
    assert stream.push(b"go STOP and halt") == "go "
    assert stream.stop == "STOP"


def test_a_stop_string_inside_one_piece_cuts_the_piece() -> None:
    stream = TextStream(("\n\n",))
    assert stream.push(b"line\n\nnext") == "line"
    assert stream.stopped


def test_without_stop_strings_text_flows_through_at_once() -> None:
    stream = TextStream(())
    assert stream.push(b"abc") == "abc"
    assert stream.flush() == ""


def test_the_longest_tail_that_could_start_any_stop_string_is_held() -> None:
    stream = TextStream(("|>", "<|end|>"))  # "|" could start the first, "<|" the second
    assert stream.push(b"say <|") == "say "
    assert stream.push(b"x") == "<|x"
