"""The notebooks page (`/notebooks`): each notebook's health over its newest terminal runs
(success rate, duration p50/p95, sparklines, last failure) and the minutes it used this month."""

from __future__ import annotations

from dataclasses import dataclass

from flask import render_template

from service import defaults, keys
from service.events.health import NotebookHealth, finished_at, notebook_health
from service.events.records import TERMINAL_STATUSES
from service.times import duration_text
from service.web.dashboard import charts
from service.web.dashboard.blueprint import bp
from service.web.resources import get_components


@dataclass(frozen=True)
class NotebookRow:
    application_id: str
    notebook_id: str
    name: str | None
    health: NotebookHealth
    running: int


def notebook_anchor(application_id: str, notebook_id: str) -> str:
    """The id of a notebook's row, for links from other pages (`/notebooks#<anchor>`)."""
    return f"notebook-{application_id}-{notebook_id}"


@bp.get("/notebooks")
def notebooks():
    components = get_components()
    store = components.store
    names = store.notebook_names()
    refs = store.notebook_refs()
    refs += sorted(set(names) - set(refs))
    rows = []
    for ref in refs:
        application_id, notebook_id = keys.split_notebook_ref(ref)
        recent = store.query(
            application_id=application_id,
            notebook_id=notebook_id,
            statuses=TERMINAL_STATUSES,
            limit=defaults.DASHBOARD_NOTEBOOK_RUNS,
        )
        rows.append(
            NotebookRow(
                application_id,
                notebook_id,
                names.get(ref),
                notebook_health(recent.items),
                store.pending_count_since(application_id, notebook_id, 0),
            )
        )
    rows.sort(key=lambda r: ((r.name or r.notebook_id).casefold(), r.notebook_id))
    minutes = components.minutes.this_month((r.application_id, r.notebook_id) for r in rows)
    return render_template(
        "dashboard/notebooks.html",
        live=any(r.running for r in rows),
        rows=rows,
        minutes=minutes,
        window=defaults.DASHBOARD_NOTEBOOK_RUNS,
        sparkline=charts.sparkline,
        duration_text=duration_text,
        finished_at=finished_at,
        anchor=notebook_anchor,
    )
