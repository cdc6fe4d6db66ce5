"""The overview page (`/`): queues, the sync backlog, recent executions and callbacks."""

from __future__ import annotations

import time

from flask import render_template, request

from service import defaults, keys
from service.events.records import STATUSES
from service.web.dashboard.blueprint import bp
from service.web.resources import get_components


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
    names = components.store.notebook_names()
    pending = components.store.pending_count()
    return render_template(
        "dashboard/index.html",
        live=pending > 0,
        warnings=components.unseen.all_warnings(names),
        executions=page.items,
        names=names,
        ref=keys.notebook_ref,
        counts=components.store.count_by_status(),
        statuses=STATUSES,
        selected=status if statuses else None,
        queues=components.queues.stats(now),
        dirty=dirty,
        oldest_dirty=oldest_dirty,
        pending=pending,
        events=components.store.events(defaults.DASHBOARD_EVENTS),
    )
