"""The pipelines part of the management API: pipelines and their runs, and alerts."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request, url_for

from service import defaults
from service.errors import UsageProblem
from service.followups.actions.ledger import ActionNotFound
from service.followups.alerts.silences import Silence
from service.followups.alerts.state import Alert
from service.followups.alerts.timeline import Episode
from service.followups.channels import build_channel
from service.followups.messages import StepFailure
from service.followups.pipeline_file.model import ACTION_KINDS
from service.followups.pipelines.runs import Run, RunNotFound
from service.times import iso
from service.web import bodies
from service.web.auth import require_api_token
from service.web.errors import ApiError
from service.web.resources import get_components

bp = Blueprint("pipelines", __name__, url_prefix="/api")
bp.before_request(require_api_token)


@bp.get("/pipelines")
def list_pipelines():
    """The pipelines of the file in force, each with its most recent runs."""
    followups = get_components().followups
    loaded = followups.pipeline_file()
    if loaded is None:
        return jsonify({"items": [], "file": None})
    items = []
    for name, pipeline in loaded.file.pipelines.items():
        recent = followups.runs(name, defaults.API_RECENT_RUNS)
        items.append(
            {
                "name": name,
                "description": pipeline.description,
                "params": pipeline.params,
                "steps": [
                    {
                        "key": key,
                        "notebook": step.notebook,
                        "after": step.after,
                        "when": step.when,
                        "onFailure": step.on_failure,
                        "retry": step.retry.model_dump() if step.retry else None,
                    }
                    for key, step in pipeline.steps.items()
                ],
                "recentRuns": [
                    {"id": r.id, "status": r.status.value, "createdAt": r.created_at}
                    for r in recent
                ],
            }
        )
    channels = {
        name: build_channel(name, config).describe()
        for name, config in loaded.file.channels.items()
    }
    return jsonify({"items": items, "channels": channels, "file": {"digest": loaded.digest}})


@bp.post("/pipelines/<name>/runs")
def start_run(name: str):
    """Start a run of pipeline `name`; body `{"params": {...}, "requestedBy": "..."}`."""
    body = bodies.json_object({"params", "requestedBy"})
    params = body.get("params", {})
    if not isinstance(params, dict):
        raise ApiError(400, "params must be a JSON object")
    requested_by = bodies.requested_by(body)
    try:
        run = get_components().followups.start_run(name, params, f"api:{requested_by}")
    except RunNotFound as exc:
        raise ApiError(404, str(exc)) from None
    except UsageProblem as exc:
        raise ApiError(400, str(exc)) from None
    location = url_for("pipelines.get_run", run_id=run.id)
    return jsonify(run_json(run)), 201, {"Location": location}


@bp.get("/pipelines/<name>/runs")
def list_runs(name: str):
    runs = get_components().followups.runs(name, defaults.API_RUNS_PAGE)
    return jsonify({"items": [run_json(r) for r in runs]})


@bp.get("/runs/<run_id>")
def get_run(run_id: str):
    try:
        run = get_components().followups.run(run_id)
    except RunNotFound as exc:
        raise ApiError(404, str(exc)) from None
    return jsonify(run_json(run))


@bp.get("/alerts")
def list_alerts():
    """Every alert's state, and the notifications that failed for good (newest first)."""
    followups = get_components().followups
    return jsonify(
        {
            "items": [
                alert_json(a, followups.silenced_by(a), followups.alert_step_failure(a))
                for a in followups.alerts()
            ],
            "failedDeliveries": [
                {
                    "action": f["key"],
                    "channel": f["channel"],
                    "kind": f["kind"],
                    "event": f["event"],
                    "alert": f.get("alert"),
                    "error": f["error"],
                    "attempts": f["attempts"],
                    "at": _iso(f["at"]),
                }
                for f in followups.failed_deliveries()
            ],
        }
    )


@bp.get("/alerts/<alert_id>")
def get_alert(alert_id: str):
    """One alert with its kept episodes (newest first): each one's timeline and the executions
    that caused it."""
    followups = get_components().followups
    alert = followups.alert(alert_id)
    if alert is None:
        raise ApiError(404, f"no alert {alert_id}")
    return jsonify(
        {
            **alert_json(alert, followups.silenced_by(alert), followups.alert_step_failure(alert)),
            "episodes": [episode_json(e) for e in followups.alert_episodes(alert)],
        }
    )


def run_json(run: Run) -> dict[str, Any]:
    return {
        "id": run.id,
        "pipeline": run.pipeline,
        "status": run.status.value,
        "params": run.params,
        "requestedBy": run.requested_by,
        "createdAt": run.created_at,
        "finishedAt": run.finished_at,
        "steps": {
            key: {
                "state": step.state.value,
                "notebook": step.notebook,
                "attempt": step.attempt,
                "context": step.context,
                "startedAt": step.started_at,
                "finishedAt": step.finished_at,
                "retryAt": _iso(step.retry_at),
                "reason": step.reason,
                "executions": step.executions,
            }
            for key, step in run.steps.items()
        },
    }


def alert_json(
    alert: Alert, silenced_by: list[Silence], step_failure: StepFailure | None
) -> dict[str, Any]:
    """An alert's state; `silenced_by`: the silences in force that silence it; `step_failure`:
    the pipeline step its last failure is of, with the steps skipped because of it."""
    return {
        "id": alert.id,
        "notebookId": alert.notebook_id,
        "notebookName": alert.notebook_name,
        "failureClass": alert.failure_class.value,
        "state": alert.state.value,
        "episode": alert.episode,
        "channels": alert.channels,
        "failures": alert.failures,
        "firstFailureAt": _iso(alert.first_failure_at),
        "lastFailureAt": _iso(alert.last_failure_at),
        "lastExecutionId": (alert.last_execution or {}).get("id"),
        "notifications": alert.notifications,
        "lastNotifiedAt": _iso(alert.last_notified_at),
        "nextNotificationAt": _iso(alert.next_at),
        "resolvedAt": _iso(alert.resolved_at),
        "resolvedBy": (alert.resolved_by or {}).get("id"),
        "rules": alert.rules,
        "silencedBy": [s.id for s in silenced_by],
        "severity": alert.severity,
        "groupWait": alert.group_wait,
        "repeatInterval": alert.repeat_interval,
        "sendResolved": alert.send_resolved,
        "pipelineStep": step_failure
        and {
            "pipeline": step_failure.pipeline,
            "run": step_failure.run,
            "step": step_failure.step,
            "inhibited": list(step_failure.skipped),
        },
    }


def episode_json(episode: Episode) -> dict[str, Any]:
    return {
        "episode": episode.number,
        "openedAt": _iso(episode.opened_at),
        "resolvedAt": _iso(episode.resolved_at),
        "executions": episode.executions,
        "resolvedBy": episode.resolved_by,
        "timeline": [
            {**{k: v for k, v in event.items() if k != "at"}, "at": _iso(event["at"])}
            for event in episode.events
        ],
    }


def _iso(moment: float | None) -> str | None:
    return iso(moment) if moment is not None else None


@bp.get("/actions")
def list_actions():
    """Recent follow-up actions, newest first; query `kind` (execute, patch, retry, notify)."""
    kind = request.args.get("kind") or None
    if kind is not None and kind not in ACTION_KINDS:
        raise ApiError(400, f"kind must be one of {', '.join(ACTION_KINDS)}")
    records = get_components().followups.actions(defaults.API_ACTIONS_PAGE, kind)
    return jsonify({"items": [r.describe() for r in records]})


@bp.get("/actions/<path:key>")
def get_action(key: str):
    record = get_components().followups.action(key)
    if record is None:
        raise ApiError(404, f"no action {key}")
    return jsonify(record.describe())


@bp.post("/actions/<path:key>/undo")
def undo_action(key: str):
    """Set back what a patch changed (as a new action, `undo:<key>`)."""
    followups = get_components().followups
    try:
        undo = followups.undo_patch(key)
    except ActionNotFound as exc:
        raise ApiError(404, str(exc)) from None
    except UsageProblem as exc:
        raise ApiError(409, str(exc)) from None
    record = followups.action(undo)
    if record is None:
        raise ApiError(404, f"no action {undo}")
    location = url_for("pipelines.get_action", key=undo)
    return jsonify(record.describe()), 202, {"Location": location}
