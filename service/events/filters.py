"""The filters people put on the execution history (notebook, status, time range), read from the
text of a query string or a form, the same way for the API and the dashboard.

A wrong value is a `FilterProblem` whose message says which filter is wrong and what it takes:
the API answers it as a 400, the dashboard shows it on the page.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from service import keys
from service.config import OBJECT_ID
from service.events.records import STATUSES
from service.times import parse_instant


class FilterProblem(ValueError):
    """A filter value that names no notebook, no status or no moment."""


@dataclass(frozen=True)
class ExecutionFilter:
    notebook_id: str | None = None
    statuses: tuple[str, ...] = ()
    since_ms: int | None = None
    until_ms: int | None = None


def parse_filter(
    *,
    notebook: str | None,
    status: str | None,
    since: str | None,
    until: str | None,
    application_id: str | None,
    names: Mapping[str, str] | None = None,
) -> ExecutionFilter:
    """The filter the texts describe; empty texts filter nothing. `status` is a comma-separated
    list; `notebook` an id or, when `names` (notebook_ref -> name) is given, a name among them
    (of `application_id` when it is set)."""
    return ExecutionFilter(
        notebook_id=_notebook(notebook.strip(), application_id, names) if notebook else None,
        statuses=_statuses(status or ""),
        since_ms=_instant(since, "since"),
        until_ms=_instant(until, "until"),
    )


def _notebook(text: str, application_id: str | None, names: Mapping[str, str] | None) -> str:
    if OBJECT_ID.fullmatch(text):
        return text
    if names is None:
        raise FilterProblem("notebook must be a notebook id (24 hexadecimal characters)")
    found = {
        notebook_id
        for ref, name in names.items()
        if name == text
        for app, notebook_id in [keys.split_notebook_ref(ref)]
        if not application_id or app == application_id
    }
    if len(found) != 1:
        which = "no notebook" if not found else "more than one notebook"
        raise FilterProblem(
            f"{which} named {text[:100]!r} is known; give a notebook id (24 hexadecimal "
            "characters) or the name of a notebook nbrelay has seen"
        )
    return found.pop()


def _statuses(text: str) -> tuple[str, ...]:
    statuses = tuple(s for s in text.split(",") if s)
    unknown = [s for s in statuses if s not in STATUSES]
    if unknown:
        raise FilterProblem(f"unknown status {unknown[0][:100]!r}; one of {', '.join(STATUSES)}")
    return statuses


def _instant(text: str | None, name: str) -> int | None:
    if not text:
        return None
    try:
        return parse_instant(text)
    except ValueError as exc:
        raise FilterProblem(f"{name}: {exc}") from None
