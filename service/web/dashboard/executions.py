"""Executions: one execution's page, and the redirect to an output's signed URL."""

from __future__ import annotations

from typing import Any

from flask import abort, redirect, render_template, request

from service import keys
from service.config import OBJECT_ID
from service.events.records import ExecutionRecord
from service.web.dashboard.blueprint import bp
from service.web.resources import get_components

TIMESTAMPS = (
    ("runQueuedAt", "queued"),
    ("runStartedAt", "started"),
    ("inputsCompletedAt", "inputs ready"),
    ("notebookCompletedAt", "notebook done"),
    ("outputsCompletedAt", "outputs saved"),
)
HIDDEN = "(hidden)"


@bp.get("/executions")
def executions():
    return render_template("dashboard/executions.html")


@bp.get("/executions/<execution_id>")
def execution(execution_id: str):
    components = get_components()
    record = _stored(execution_id)
    reveal = request.args.get("reveal") == "1"
    context = record.template_context
    return render_template(
        "dashboard/execution.html",
        live=not record.is_terminal,
        record=record,
        view=record.as_json(),
        name=components.store.notebook_names().get(
            keys.notebook_ref(record.application_id, record.notebook_id)
        ),
        timestamps=TIMESTAMPS,
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
