"""The silences part of the management API: create, list and end silences of alerts."""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, jsonify, url_for

from service.errors import UsageProblem
from service.followups.alerts.silences import Silence, SilenceNotFound
from service.times import iso
from service.web import bodies
from service.web.auth import require_api_token
from service.web.errors import ApiError
from service.web.resources import get_components

bp = Blueprint("silences", __name__, url_prefix="/api")
bp.before_request(require_api_token)


@bp.post("/silences")
def create_silence():
    """Silence alerts; body `{"matcher": {"notebook"|"rule"|"alert": "..."}, "endsAt" or
    "duration", "author", "comment"}`."""
    body = bodies.json_object({"matcher", "endsAt", "duration", "author", "comment"})
    try:
        silence = get_components().followups.silence(
            body.get("matcher"),
            ends_at=body.get("endsAt"),
            duration=body.get("duration"),
            author=body.get("author"),
            comment=body.get("comment"),
        )
    except UsageProblem as exc:
        raise ApiError(400, str(exc)) from None
    location = url_for("silences.get_silence", silence_id=silence.id)
    return jsonify(silence_json(silence, silence.starts_at)), 201, {"Location": location}


@bp.get("/silences")
def list_silences():
    """The silences in force (ending soonest first), then those that ended (most recent first)."""
    now = time.time()
    return jsonify({"items": [silence_json(s, now) for s in get_components().followups.silences()]})


@bp.get("/silences/<silence_id>")
def get_silence(silence_id: str):
    try:
        silence = get_components().followups.silence_by_id(silence_id)
    except SilenceNotFound as exc:
        raise ApiError(404, str(exc)) from None
    return jsonify(silence_json(silence, time.time()))


@bp.delete("/silences/<silence_id>")
def end_silence(silence_id: str):
    """End a silence now."""
    try:
        silence = get_components().followups.unsilence(silence_id, "api")
    except SilenceNotFound as exc:
        raise ApiError(404, str(exc)) from None
    return jsonify(silence_json(silence, time.time()))


def silence_json(silence: Silence, now: float) -> dict[str, Any]:
    return {
        "id": silence.id,
        "matcher": {silence.matcher: silence.value},
        "state": "active" if silence.active(now) else "ended",
        "startsAt": iso(silence.starts_at),
        "endsAt": iso(silence.ends_at),
        "author": silence.author,
        "comment": silence.comment,
        "endedBy": silence.ended_by,
    }
