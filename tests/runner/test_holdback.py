"""partial_suffix: how much of a streamed text could still begin a tag (stop strings, </think>, tool tags)."""

from __future__ import annotations

import pytest

from llmd.holdback import partial_suffix


@pytest.mark.parametrize(
    ("text", "tag", "held"),
    [
        ("hello </", "</think>", 2),  # the longest tail that begins the tag
        ("hello <", "</think>", 1),
        ("a <<", "<<x", 2),  # longest, not first: "<" alone would also begin it
        ("hello", "</think>", 0),
        ("</think>", "</think>", 0),  # a whole tag is found by the caller, never held as partial
        ("</thin", "</think>", 6),
        ("thin", "</think>", 0),  # a tail from the middle of the tag is not a start
        ("", "</think>", 0),
        ("<", "<", 0),  # a one-character tag is never partial
        ("x", "", 0),
    ],
)
def test_the_longest_tail_that_begins_the_tag_is_held(text: str, tag: str, held: int) -> None:
    assert partial_suffix(text, tag) == held
