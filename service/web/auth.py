"""Bearer tokens, compared in constant time: the management API's and /metrics'."""

from __future__ import annotations

import hmac

from flask import request

from service.web import surfaces
from service.web.errors import ApiError
from service.web.resources import get_components


def bearer_token() -> str | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


def token_matches(presented: str | None, expected: str | None) -> bool:
    if not presented or not expected:
        return False
    return hmac.compare_digest(presented.encode(), expected.encode())


def require_api_token() -> None:
    """`before_request` of every /api blueprint: NBRELAY_API_TOKEN as a bearer token."""
    expected = get_components().settings.api_token
    if not token_matches(bearer_token(), expected):
        message = (
            "a valid bearer token (NBRELAY_API_TOKEN) is required"
            if expected
            else "the management API is disabled: NBRELAY_API_TOKEN is not set"
        )
        raise ApiError(401, message, headers={"WWW-Authenticate": 'Bearer realm="nbrelay"'})


def require_metrics_token() -> None:
    """`/metrics`: NBRELAY_METRICS_TOKEN as a bearer token when it is set. Without it, metrics
    are served only on the admin listener, which is private."""
    expected = get_components().settings.metrics_token
    if expected is None:
        if surfaces.on_admin_listener():
            return
        raise ApiError(
            403,
            "metrics are disabled on this listener: set NBRELAY_METRICS_TOKEN and scrape with "
            "it as a bearer token, or scrape the admin listener (nbrelay web --admin-bind)",
        )
    if not token_matches(bearer_token(), expected):
        raise ApiError(
            401,
            "a valid bearer token (NBRELAY_METRICS_TOKEN) is required",
            headers={"WWW-Authenticate": 'Bearer realm="nbrelay-metrics"'},
        )
