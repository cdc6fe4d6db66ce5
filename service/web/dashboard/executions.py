"""Executions: the filtered, paged list; one execution's page (its phases drawn to scale, the
callbacks that named it, what started it); the redirect to an output's signed URL."""

from __future__ import annotations

import time
from typing import Any

from flask import abort, redirect, render_template, request

from service import defaults, keys
from service.config import OBJECT_ID
from service.events.filters import ExecutionFilter, FilterProblem, parse_filter
from service.events.records import STATUSES, ExecutionRecord, InvalidCursor, Page
from service.times import parse_time_ms
from service.web.dashboard.blueprint import bp
from service.web.dashboard.charts import Bar, time_bars
from service.web.resources import get_components

TIMESTAMPS = (
    ("runQueuedAt", "queued"),
    ("runStartedAt", "started"),
    ("inputsCompletedAt", "inputs ready"),
    ("notebookCompletedAt", "notebook done"),
    ("outputsCompletedAt", "outputs saved"),
)
# Each phase runs from one of Losant's timestamps to the next.
PHASES = (
    ("queued", "runQueuedAt", "runStartedAt"),
    ("inputs", "runStartedAt", "inputsCompletedAt"),
    ("notebook", "inputsCompletedAt", "notebookCompletedAt"),
    ("outputs", "notebookCompletedAt", "outputsCompletedAt"),
)
FILTERS = ("notebook", "status", "since", "until")
HIDDEN = "(hidden)"


@bp.get("/executions")
def executions():
    components = get_components()
    names = components.store.notebook_names()
    given = {name: request.args.get(name, "").strip() for name in FILTERS}
    problem = None
    page = Page([], None)
    try:
        wanted = parse_filter(
            **given, application_id=components.settings.losant_application_id, names=names
        )
        page = _page(wanted, request.args.get("cursor") or None)
    except (FilterProblem, InvalidCursor) as exc:
        problem = str(exc)
    return render_template(
        "dashboard/executions.html",
        live=any(not r.is_terminal for r in page.items),
        given=given,
        problem=problem,
        executions=page.items,
        next_query={**{k: v for k, v in given.items() if v}, "cursor": page.next_cursor},
        paged=bool(request.args.get("cursor")),
        first_query={k: v for k, v in given.items() if v},
        statuses=STATUSES,
        names=names,
        known_names=sorted(set(names.values())),
        ref=keys.notebook_ref,
    )


def _page(wanted: ExecutionFilter, cursor: str | None) -> Page:
    components = get_components()
    return components.store.query(
        application_id=components.settings.losant_application_id,
        notebook_id=wanted.notebook_id,
        statuses=wanted.statuses,
        since_ms=wanted.since_ms,
        until_ms=wanted.until_ms,
        limit=defaults.DASHBOARD_ROWS,
        cursor=cursor,
    )


@bp.get("/executions/<execution_id>")
def execution(execution_id: str):
    components = get_components()
    record = _stored(execution_id)
    reveal = request.args.get("reveal") == "1"
    context = record.template_context
    now = time.time()
    callbacks, all_scanned = _callbacks(record)
    return render_template(
        "dashboard/execution.html",
        live=not record.is_terminal,
        record=record,
        view=record.as_json(),
        name=components.store.notebook_names().get(
            keys.notebook_ref(record.application_id, record.notebook_id)
        ),
        timestamps=TIMESTAMPS,
        timeline=time_bars(phases(record, now), now=now),
        marker=record.marker,
        callbacks=callbacks,
        all_scanned=all_scanned,
        scan=defaults.DASHBOARD_CALLBACK_SCAN,
        reveal=reveal,
        context=context,
        context_keys=sorted(context) if isinstance(context, dict) else [],
        shown=(record.losant or {}) if reveal else masked(record.losant or {}),
    )


@bp.get("/executions/<execution_id>/outputs/<path:name>")
def output(execution_id: str, name: str):
    """The signed download URL of one output file, for a signed-in user only."""
    info = ((_stored(execution_id).losant or {}).get("outputInfo") or {}).get(name)
    url = info.get("url") if isinstance(info, dict) else None
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        abort(404)
    return redirect(url, 302)


def _stored(execution_id: str) -> ExecutionRecord:
    record = get_components().store.get(execution_id) if OBJECT_ID.fullmatch(execution_id) else None
    if record is None:
        abort(404)
    return record


def phases(record: ExecutionRecord, now: float) -> list[Bar]:
    """The execution's phases from Losant's timestamps, each a bar from its start to its end.
    A phase that started but has no end is still going, unless the execution is terminal: then
    it is where the execution stopped, drawn up to Losant's last update in the status's colour;
    later phases did not start."""
    losant = record.losant or {}

    def moment(field: str) -> float | None:
        ms = parse_time_ms(losant.get(field))
        return ms / 1000 if ms is not None else None

    stopped = moment("lastUpdated") or now
    bars = []
    for label, first, last in PHASES:
        start, end = moment(first), moment(last)
        css = "completed"
        if start is not None and end is None:
            css = record.status if record.is_terminal and record.status else "running"
            end = stopped if record.is_terminal else None
        bars.append(Bar(label, start, end, css=css))
    return bars


def _callbacks(record: ExecutionRecord) -> tuple[list[tuple[str, dict[str, str]]], bool]:
    """The recorded callbacks and relay requests that named the execution: a bounded read of
    the event stream from its queue time (less the clock skew allowed with Losant) to the
    grace for callbacks after it ended."""
    queued = record.queued_ms
    if queued is None:
        return [], True
    ended = parse_time_ms(record.meta.get("terminal_at"))
    until = ended + int(defaults.MISSING_CALLBACK_GRACE * 1000) if ended is not None else None
    return get_components().store.events_naming(
        record.id,
        queued - defaults.SYNC_SINCE_MARGIN * 1000,
        until,
        defaults.DASHBOARD_CALLBACK_SCAN,
    )


def masked(value: Any, key: str | None = None) -> Any:
    """Losant's record without what users put in it or what grants access: `templateContext`
    and `inputInfo` hidden, every URL hidden."""
    if key in ("templateContext", "inputInfo"):
        return HIDDEN
    if isinstance(value, dict):
        return {k: masked(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v) for v in value]
    if isinstance(value, str) and "://" in value:
        return HIDDEN
    return value
