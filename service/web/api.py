"""The management API under /api: stored executions, starting runs, the OpenAPI document."""

from __future__ import annotations

import math
from typing import Any

from flask import Blueprint, jsonify, request, url_for

from service import defaults
from service.config import OBJECT_ID
from service.errors import UsageProblem
from service.events.filters import FilterProblem, parse_filter
from service.events.records import InvalidCursor
from service.events.starter import StartDeferred, parse_user_context
from service.times import parse_instant
from service.web import bodies, openapi
from service.web.auth import require_api_token
from service.web.errors import ApiError
from service.web.resources import get_components

bp = Blueprint("api", __name__, url_prefix="/api")
bp.before_request(require_api_token)


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"{name} must be a whole number") from None
    if not low <= value <= high:
        raise ApiError(400, f"{name} must be between {low} and {high}")
    return value


@bp.get("/executions")
def list_executions():
    """Stored executions, newest first; filters: notebook, status, since, until."""
    components = get_components()
    application_id = components.settings.losant_application_id
    try:
        wanted = parse_filter(
            notebook=request.args.get("notebook"),
            status=request.args.get("status"),
            since=request.args.get("since"),
            until=request.args.get("until"),
            application_id=application_id,
        )
        page = components.store.query(
            application_id=application_id,
            notebook_id=wanted.notebook_id,
            statuses=wanted.statuses,
            since_ms=wanted.since_ms,
            until_ms=wanted.until_ms,
            limit=_int_arg("limit", defaults.API_PAGE_SIZE, 1, defaults.API_MAX_PAGE_SIZE),
            cursor=request.args.get("cursor") or None,
        )
    except (FilterProblem, InvalidCursor) as exc:
        raise ApiError(400, str(exc)) from None
    result: dict[str, Any] = {
        "items": [r.as_json() for r in page.items],
        "nextCursor": page.next_cursor,
    }
    if wanted.notebook_id is not None and application_id:
        name = components.store.notebook_name(application_id, wanted.notebook_id)
        result["warnings"] = components.unseen.warnings(application_id, wanted.notebook_id, name)
    return jsonify(result)


@bp.get("/executions/<execution_id>")
def get_execution(execution_id: str):
    record = get_components().store.get(execution_id) if OBJECT_ID.fullmatch(execution_id) else None
    if record is None:
        raise ApiError(404, f"no execution {execution_id} is stored")
    return jsonify(record.as_json())


@bp.post("/notebooks/<notebook>/executions")
def create_execution(notebook: str):
    """Start a run of `notebook` (id or name), like `nbrelay run`."""
    body = bodies.json_object({"context", "relativeTo", "requestedBy"})
    relative_to = body.get("relativeTo")
    if relative_to is not None:
        if isinstance(relative_to, bool) or not isinstance(relative_to, (int, str)):
            raise ApiError(
                400, "relativeTo must be milliseconds since epoch or an ISO 8601 date-time"
            )
        try:
            relative_to = parse_instant(relative_to)
        except ValueError as exc:
            raise ApiError(400, f"relativeTo: {exc}") from None
    requested_by = bodies.requested_by(body)
    try:
        started = get_components().starter.start(
            notebook,
            requested_by=f"api:{requested_by}" if requested_by != "api" else "api",
            context=parse_user_context(body.get("context")),
            relative_to=relative_to,
        )
    except UsageProblem as exc:
        raise ApiError(400, str(exc)) from None
    except StartDeferred as exc:
        retry_after = {"Retry-After": str(math.ceil(exc.retry_after))}
        raise ApiError(429, str(exc), type="StartDeferred", headers=retry_after) from None
    location = url_for("api.get_execution", execution_id=started.execution_id)
    return jsonify(started.as_json()), 201, {"Location": location}


@bp.get("/openapi.json")
def openapi_document():
    return jsonify(openapi.document())
