"""JSON request bodies of the management API: one object, decoded strictly
(`service.json_input`), holding only the fields the endpoint knows."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from flask import request

from service import defaults, json_input
from service.web.errors import ApiError


def json_object(fields: Collection[str]) -> dict[str, Any]:
    """The request's body as a JSON object, `{}` when there is none. ApiError 415 when it is not
    application/json; 400 when it is malformed, nests too deep, holds NaN or Infinity, is not an
    object or has a field not in `fields`."""
    raw = request.get_data(cache=True)
    if not raw:
        return {}
    if not request.is_json:
        raise ApiError(415, "the body must be application/json")
    try:
        body = json_input.loads(raw)
    except json_input.MalformedJson as exc:
        raise ApiError(400, f"the body is malformed: {exc}") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    unknown = set(body) - set(fields)
    if unknown:
        raise ApiError(400, f"unknown field {sorted(unknown)[0]!r}")
    return body


def requested_by(body: dict[str, Any]) -> str:
    """The body's `requestedBy` ("api" when absent): a non-empty string, not too long."""
    value = body.get("requestedBy", "api")
    longest = defaults.REQUESTED_BY_MAX_LENGTH
    if not isinstance(value, str) or not value or len(value) > longest:
        raise ApiError(400, f"requestedBy must be a non-empty string of at most {longest} chars")
    return value
