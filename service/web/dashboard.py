"""`GET /`: a small server-rendered view of recent executions and of the service's state.

Read-only, and it shows nothing secret: no tokens, no callback URLs, no configuration values.
"""

from __future__ import annotations

import time

from flask import Blueprint, abort, render_template, request

from service import defaults, keys
from service.config import OBJECT_ID
from service.events.records import STATUSES
from service.web.resources import get_components

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
    components = get_components()
    status = request.args.get("status")
    statuses = [status] if status in STATUSES else []
    page = components.store.query(
        application_id=None, statuses=statuses, limit=defaults.DASHBOARD_ROWS
    )
    now = time.time()
    dirty, oldest_dirty = components.store.sync_backlog(now)
    return render_template(
        "dashboard/index.html",
        executions=page.items,
        names=components.store.notebook_names(),
        ref=keys.notebook_ref,
        counts=components.store.count_by_status(),
        statuses=STATUSES,
        selected=status if statuses else None,
        queues=components.queues.stats(now),
        dirty=dirty,
        oldest_dirty=oldest_dirty,
        pending=components.store.pending_count(),
        events=components.store.events(defaults.DASHBOARD_EVENTS),
    )


@bp.get("/executions/<execution_id>")
def execution(execution_id: str):
    components = get_components()
    record = components.store.get(execution_id) if OBJECT_ID.match(execution_id) else None
    if record is None:
        abort(404)
    return render_template(
        "dashboard/execution.html",
        record=record,
        view=record.as_json(),
        name=components.store.notebook_names().get(
            keys.notebook_ref(record.application_id, record.notebook_id)
        ),
        timestamps=TIMESTAMPS,
    )
