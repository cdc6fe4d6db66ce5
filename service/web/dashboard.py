"""`GET /`: a small server-rendered view of recent executions and of the service's state.

Read-only, and it shows nothing secret: no tokens, no callback URLs, no configuration values.
"""

from __future__ import annotations

import time

from flask import Blueprint, abort, render_template, request

from service import defaults, jobs, keys
from service.config import OBJECT_ID
from service.store import STATUSES
from service.web.resources import get_context

bp = Blueprint("dashboard", __name__, template_folder="templates")

TIMESTAMPS = (
    ("runQueuedAt", "queued"),
    ("runStartedAt", "started"),
    ("inputsCompletedAt", "inputs ready"),
    ("notebookCompletedAt", "notebook done"),
    ("outputsCompletedAt", "outputs saved"),
)


@bp.get("/")
def index():
    ctx = get_context()
    status = request.args.get("status")
    statuses = [status] if status in STATUSES else []
    page = ctx.store.query(application_id=None, statuses=statuses, limit=defaults.DASHBOARD_ROWS)
    now = time.time()
    dirty, oldest_dirty = ctx.store.sync_backlog(now)
    return render_template(
        "dashboard/index.html",
        executions=page.items,
        names=ctx.store.notebook_names(),
        ref=keys.notebook_ref,
        counts=ctx.store.count_by_status(),
        statuses=STATUSES,
        selected=status if statuses else None,
        queues=jobs.queue_stats(ctx.rq_redis, now),
        dirty=dirty,
        oldest_dirty=oldest_dirty,
        pending=ctx.store.pending_count(),
        events=ctx.store.events(defaults.DASHBOARD_EVENTS),
    )


@bp.get("/executions/<execution_id>")
def execution(execution_id: str):
    ctx = get_context()
    record = ctx.store.get(execution_id) if OBJECT_ID.match(execution_id) else None
    if record is None:
        abort(404)
    return render_template(
        "dashboard/execution.html",
        record=record,
        view=record.as_json(),
        name=ctx.store.notebook_names().get(
            keys.notebook_ref(record.application_id, record.notebook_id)
        ),
        timestamps=TIMESTAMPS,
    )
