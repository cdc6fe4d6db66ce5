"""The alerts page (`/alerts`): alert episodes, firing first, then resolved, newest first; the
messages each sent and what came of their delivery (or that a silence held them back); the
silences, with a form to create one and a button to end each; the notifications that failed for
good."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from flask import render_template, request, url_for

from service.errors import UsageProblem
from service.followups.actions.ledger import ActionRecord
from service.followups.alerts.silences import MATCHERS, SilenceNotFound
from service.followups.alerts.state import Alert, AlertState
from service.times import iso
from service.web.dashboard.blueprint import answer, bp
from service.web.dashboard.notebooks import notebook_anchor
from service.web.pipelines import alert_json
from service.web.resources import get_components
from service.web.silences import silence_json

FIRING = (AlertState.FIRING, AlertState.PENDING)
DELIVERY = {"done": "performed", "failed": "failed", "pending": "pending", "running": "running"}
AUTHOR = "dashboard"  # the author of a silence created here when the form names none


@dataclass(frozen=True)
class Episode:
    alert: dict[str, Any]  # as the API shows it (`GET /api/alerts`)
    notebook_anchor: str  # the notebook's row on the notebooks page
    messages: list[dict[str, Any]]


@bp.get("/alerts")
def alerts():
    followups = get_components().followups
    failed = followups.failed_deliveries()
    failures: dict[str, dict[str, Any]] = {}
    for failure in failed:  # newest first: the newest failure of each action wins
        failures.setdefault(failure["key"], failure)
    episodes: dict[str, list[Episode]] = {"firing": [], "resolved": []}
    pending_messages = False
    for alert in sorted(followups.alerts(), key=_newest_first):
        records = followups.alert_notifications(alert)
        pending_messages = pending_messages or any(r.starting for r in records)
        section = "firing" if alert.state in FIRING else "resolved"
        episodes[section].append(
            Episode(
                alert_json(
                    alert, followups.silenced_by(alert), followups.alert_step_failure(alert)
                ),
                notebook_anchor(alert.application_id or "", alert.notebook_id),
                [_message(r, failures.get(r.key)) for r in records],
            )
        )
    return render_template(
        "dashboard/alerts.html",
        live=bool(episodes["firing"]) or pending_messages,
        firing=episodes["firing"],
        resolved=episodes["resolved"],
        failed=[{**f, "at": iso(f["at"])} for f in failed],
        silences=[silence_json(s, time.time()) for s in followups.silences()],
        matchers=MATCHERS,
    )


@bp.post("/alerts/silences")
def create_silence():
    """Silence alerts from the form, as `POST /api/silences` does: `matcher` (notebook, rule or
    alert) and its `value`, `duration` or `until`, `comment`, `author`."""
    form = request.form
    back = url_for("dashboard.alerts")
    matcher = form.get("matcher", "")
    try:
        silence = get_components().followups.silence(
            {matcher: form.get("value", "")},
            ends_at=form.get("until") or None,
            duration=form.get("duration") or None,
            author=form.get("author") or AUTHOR,
            comment=form.get("comment", ""),
        )
    except UsageProblem as exc:
        return answer(back, str(exc), error=True)
    return answer(back, f"Silence {silence.id} created until {iso(silence.ends_at)}.")


@bp.post("/alerts/silences/<silence_id>/end")
def end_silence(silence_id: str):
    """End a silence now, as `DELETE /api/silences/<id>` does."""
    back = url_for("dashboard.alerts")
    try:
        get_components().followups.unsilence(silence_id, AUTHOR)
    except SilenceNotFound as exc:
        return answer(back, str(exc), error=True)
    return answer(back, f"Silence {silence_id} ended.")


def _newest_first(alert: Alert) -> float:
    return -(alert.resolved_at or alert.last_failure_at or 0)


def _message(record: ActionRecord, failure: dict[str, Any] | None) -> dict[str, Any]:
    """One notification of an episode: which message, to which channel, when, and its
    delivery (`failure`: the failed-for-good entry of this action, if any)."""
    message = record.spec.get("message") or {}
    return {
        "key": record.key,
        "event": message.get("event", ""),
        "channel": record.spec.get("channel", ""),
        "kind": (failure or {}).get("kind"),
        "at": iso(record.created_at),
        "delivery": "silenced"
        if (record.outcome or {}).get("silenced")
        else DELIVERY[record.state.value],
        "attempts": (record.outcome or {}).get("attempts") or (failure or {}).get("attempts"),
        "error": record.error,
    }
