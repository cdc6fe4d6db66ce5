"""Request bodies: read with a hard limit whatever their framing, and, for the management API,
decoded strictly as one JSON object.

Content-Length over the limit is refused before anything is read; a body without one (chunked)
is read up to one byte past the limit and refused there. Either way at most `limit + 1` bytes
are ever buffered, and the answer is 413, never a body silently cut to the limit.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from flask import request
from werkzeug.wsgi import get_input_stream

from service import defaults, json_input
from service.web.errors import ApiError

_READ_SIZE = 64 * 1024  # bytes asked of the server's input stream at a time


class BodyTooLarge(ApiError):
    """The request body is longer than the route accepts (413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes")


def read_body(limit: int = defaults.MAX_BODY_BYTES) -> bytes:
    """The body of the current request, at most `limit` bytes; BodyTooLarge otherwise."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise BodyTooLarge(limit)
    # The server's stream ends where the body ends (Content-Length or the last chunk); the
    # app-wide MAX_CONTENT_LENGTH is left out so that the limit is enforced here, exactly.
    stream = get_input_stream(request.environ, max_content_length=None)
    body = bytearray()
    while len(body) <= limit:
        chunk = stream.read(min(_READ_SIZE, limit + 1 - len(body)))
        if not chunk:
            return bytes(body)
        body += chunk
    raise BodyTooLarge(limit)


def json_object(fields: Collection[str]) -> dict[str, Any]:
    """The request's body as a JSON object, `{}` when there is none. ApiError 413 when it is too
    large; 415 when it is not application/json; 400 when it is malformed, nests too deep, holds
    NaN or Infinity, is not an object or has a field not in `fields`."""
    raw = read_body()
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
