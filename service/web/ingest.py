"""What the two ingest routes (callbacks and the workflow relay) share: reading a hint's body
and answering once the hint is accepted."""

from __future__ import annotations

import json

from flask import Response

from service import metrics
from service.events.ingress import Accepted
from service.web.bodies import BodyTooLarge, read_body
from service.web.errors import ApiError


def read_hint_body(source: str) -> bytes:
    """The body of a callback or relay request (413 over MAX_BODY_BYTES, counted)."""
    try:
        return read_body()
    except BodyTooLarge:
        metrics.CALLBACKS_REJECTED.labels(source, "too-large").inc()
        raise


def acknowledge(accepted: Accepted, source: str) -> tuple[Response, int]:
    """202 for an accepted hint; 429 with Retry-After when its notebook's budget was spent
    (the sync it asked for still happens: only its raw event was not kept)."""
    if accepted.retry_after is not None:
        metrics.CALLBACKS_REJECTED.labels(source, "throttled").inc()
        raise ApiError(
            429,
            "too many requests for this notebook: a sync will read Losant, but this request "
            f"was not recorded; slow down for {accepted.retry_after} s",
            headers={"Retry-After": str(accepted.retry_after)},
        )
    if accepted.duplicate:
        return _answer(_DUPLICATE)
    metrics.CALLBACKS_RECEIVED.labels(source).inc()
    return _answer(_ACCEPTED)


# The two answers of an accepted hint, serialized once: every callback gets one of them.
_ACCEPTED = json.dumps({"accepted": True}, separators=(",", ":")).encode() + b"\n"
_DUPLICATE = (
    json.dumps({"accepted": True, "duplicate": True}, separators=(",", ":")).encode() + b"\n"
)


def _answer(body: bytes) -> tuple[Response, int]:
    return Response(body, mimetype="application/json"), 202
