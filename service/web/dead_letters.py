"""The dead letters part of the management API: jobs that failed after their last retry, and
replaying them (like `nbrelay dead-letters list` and `replay`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flask import Blueprint, jsonify

from service.errors import UsageProblem
from service.queues import DeadLetter
from service.web import bodies
from service.web.auth import require_api_token
from service.web.errors import ApiError
from service.web.resources import get_components

bp = Blueprint("dead_letters", __name__, url_prefix="/api")
bp.before_request(require_api_token)


@bp.get("/dead-letters")
def list_dead_letters():
    """Jobs that failed for good, most recent failure first."""
    return jsonify({"items": [letter_json(d) for d in get_components().dead_letters.all()]})


@bp.post("/dead-letters/replay")
def replay_dead_letters():
    """Replay the dead letters named by `jobIds` in the body, or all of them without it."""
    body = bodies.json_object({"jobIds"})
    if "jobIds" not in body:
        return jsonify({"replayed": replay(None)})
    job_ids = body["jobIds"]
    if not isinstance(job_ids, list) or not all(isinstance(j, str) and j for j in job_ids):
        raise ApiError(400, "jobIds must be a list of job ids (non-empty strings)")
    return jsonify({"replayed": replay(list(dict.fromkeys(job_ids)))})


@bp.post("/dead-letters/<job_id>/replay")
def replay_dead_letter(job_id: str):
    return jsonify({"replayed": replay([job_id])})


def replay(job_ids: Sequence[str] | None) -> list[str]:
    """Replay the dead letters `job_ids` (all when None); ApiError 404 names the first one that
    is not a dead letter, and then nothing is replayed."""
    try:
        return get_components().dead_letters.replay(job_ids)
    except UsageProblem as exc:
        raise ApiError(404, str(exc)) from None


def letter_json(letter: DeadLetter) -> dict[str, Any]:
    return {
        "jobId": letter.job_id,
        "queue": letter.queue,
        "failedAt": letter.failed_at.isoformat(timespec="milliseconds")
        if letter.failed_at
        else None,
        "applicationId": letter.application_id,
        "notebookId": letter.notebook_id,
        "description": letter.description,
        "error": letter.error,
    }
