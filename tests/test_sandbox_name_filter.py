"""The notebook-name filter: `*` globbing over whole names, ignoring case, in linear time."""

from __future__ import annotations

import pytest

from sandbox.name_filter import matches


@pytest.mark.parametrize(
    ("pattern", "name", "expected"),
    [
        ("report", "Report", True),
        ("report", "reports", False),
        ("*REPORT", "daily report", True),
        ("*report", "report daily", False),
        ("daily*", "Daily report", True),
        ("d*y*t", "daily report", True),
        ("d*y*t", "daily reports", False),
        ("*", "", True),
        ("", "", True),
        ("", "x", False),
        ("**", "anything", True),
        ("a*a", "a", False),  # the two literal parts may not overlap
        ("a*a", "aa", True),
        ("*ab*ab*", "xabyab", True),
        ("*ab*ab*", "xab", False),
        ("?", "?", True),  # only `*` is special
        ("?", "a", False),
        (".*", "anything", False),
        ("[a]", "[A]", True),
    ],
)
def test_matches(pattern: str, name: str, expected: bool) -> None:
    assert matches(pattern, name) is expected


@pytest.mark.timeout(10)
def test_a_pattern_with_many_wildcards_is_decided_at_once() -> None:
    name = "a" * 40
    assert not matches("*a*a*a*a*a*a*a*a*b", name)
    assert matches("*a*a*a*a*a*a*a*a*a", name)
    assert not matches("*a*a*a*a*a*a*a*a*b", "a" * 100_000)
