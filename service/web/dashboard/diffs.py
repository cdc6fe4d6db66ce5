"""What a patch changed, field by field, as line diffs for the actions page.

Each value is written out as text (a string as it is, anything else as indented JSON, an absent
field as `(not set)`) and the two texts are compared line by line (difflib); only the changed
lines and a few lines around them are kept.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

CONTEXT_LINES = 2  # unchanged lines kept around each change
NOT_SET = "(not set)"

LineKind = Literal["same", "removed", "added", "gap"]


@dataclass(frozen=True)
class Line:
    kind: LineKind  # "gap": unchanged lines left out
    text: str


@dataclass(frozen=True)
class FieldDiff:
    field: str
    lines: list[Line]

    @property
    def changed(self) -> bool:
        return any(line.kind in ("removed", "added") for line in self.lines)


def as_text(value: Any) -> list[str]:
    """The lines a value is shown as."""
    if value is None:
        return [NOT_SET]
    if isinstance(value, str):
        return value.splitlines() or [""]
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False).splitlines()


def field_diffs(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[FieldDiff]:
    """One diff per field in `before` or `after` (in that order): what the field was, what it
    became."""
    fields = list(dict.fromkeys([*before, *after]))
    return [_diff(field, as_text(before.get(field)), as_text(after.get(field))) for field in fields]


def _diff(field: str, old: list[str], new: list[str]) -> FieldDiff:
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    groups = list(matcher.get_grouped_opcodes(CONTEXT_LINES))
    if not groups:  # nothing changed
        return FieldDiff(field, [Line("same", text) for text in old])
    lines: list[Line] = []
    for number, group in enumerate(groups):
        if number > 0 or group[0][1] > 0:
            lines.append(Line("gap", "…"))
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                lines += [Line("same", text) for text in old[i1:i2]]
                continue
            lines += [Line("removed", text) for text in old[i1:i2]]
            lines += [Line("added", text) for text in new[j1:j2]]
    if groups[-1][-1][2] < len(old):
        lines.append(Line("gap", "…"))
    return FieldDiff(field, lines)
