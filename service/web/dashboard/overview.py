"""The overview page (`/`): what waits (queues, dead letters, the sync backlog), what is wrong
(firing alerts), what runs (pipeline runs, started executions), executions per status over the
last day, and the newest executions and callbacks.

The chart counts in the status indexes, which are scored by queue time: one ZCOUNT per hour and
status (`ExecutionStore.count_by_status_per_hour`), so a refresh every 2 s costs the same
whether a day held ten executions or a million, and needs no counter of its own that a write
path could forget to keep in step.
"""

from __future__ import annotations

import time

from flask import render_template

from service import defaults, keys
from service.events.records import STATUSES
from service.followups.alerts.state import AlertState
from service.web.dashboard.blueprint import bp
from service.web.dashboard.charts import stacked_columns
from service.web.resources import get_components

HOUR = 3600


def hourly_columns(
    counts: list[dict[str, int]], first_hour: float
) -> list[tuple[str, dict[str, int]]]:
    """The chart's columns: each hour labelled by its start (UTC) with its counts."""
    return [
        (time.strftime("%m-%d %H:00 UTC", time.gmtime(first_hour + index * HOUR)), hour)
        for index, hour in enumerate(counts)
    ]


@bp.get("/")
def index():
    components = get_components()
    store, followups = components.store, components.followups
    now = time.time()
    hours = defaults.DASHBOARD_CHART_HOURS
    first_hour = (now // HOUR - (hours - 1)) * HOUR
    counts = store.count_by_status_per_hour(int(first_hour * 1000), hours)
    queues = components.queues.stats(now)
    dirty, oldest_dirty = store.sync_backlog(now)
    names = store.notebook_names()
    pending = store.pending_count()
    active = followups.active_runs()
    return render_template(
        "dashboard/index.html",
        live=pending > 0 or bool(active),
        warnings=components.unseen.all_warnings(names),
        queues=queues,
        dead_letters=sum(q.dead_letters for q in queues),
        dirty=dirty,
        oldest_dirty=oldest_dirty,
        pending=pending,
        firing=followups.alert_counts().get(AlertState.FIRING, 0),
        active_runs=active[: defaults.DASHBOARD_ROWS],
        more_runs=max(0, len(active) - defaults.DASHBOARD_ROWS),
        chart=stacked_columns(hourly_columns(counts, first_hour), STATUSES),
        totals={s: sum(hour[s] for hour in counts) for s in STATUSES},
        hours=hours,
        statuses=STATUSES,
        executions=store.query(application_id=None, limit=defaults.DASHBOARD_RECENT).items,
        names=names,
        ref=keys.notebook_ref,
        events=store.events(defaults.DASHBOARD_EVENTS),
    )
