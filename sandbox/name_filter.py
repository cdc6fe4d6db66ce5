"""The notebook-name filter of the list route (`filterField=name`, `filter=PATTERN`).

A pattern matches a whole name, ignoring case; `*` stands for any run of characters (also none)
and every other character stands for itself. The pattern is split at its `*`s into literal parts:
the first must begin the name, the last must end it, and each part between is found left to
right after the one before (taking the leftmost occurrence never loses a match). Every part is
searched once, so a match takes time linear in the lengths of name and pattern, whatever the
pattern.
"""

from __future__ import annotations

WILDCARD = "*"


def matches(pattern: str, name: str) -> bool:
    """Whether `name` matches `pattern` as a whole, ignoring case."""
    parts = pattern.casefold().split(WILDCARD)
    text = name.casefold()
    if len(parts) == 1:
        return text == parts[0]
    first, *middle, last = parts
    end = len(text) - len(last)
    if end < len(first) or not text.startswith(first) or not text.endswith(last):
        return False
    position = len(first)
    for part in middle:
        found = text.find(part, position, end)
        if found < 0:
            return False
        position = found + len(part)
    return True
