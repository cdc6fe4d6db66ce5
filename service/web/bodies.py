"""Request bodies read with a hard limit, whatever their framing.

Content-Length over the limit is refused before anything is read; a body without one (chunked)
is read up to one byte past the limit and refused there. Either way at most `limit + 1` bytes
are ever buffered, and the answer is 413, never a body silently cut to the limit.
"""

from __future__ import annotations

from flask import request
from werkzeug.wsgi import get_input_stream

from service import defaults
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
