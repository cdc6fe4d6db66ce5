"""Every error answer is JSON `{"type", "message"}` with the right status: ours, Flask's own
(unknown route, wrong method, body too large) and those of Redis and Losant."""

from __future__ import annotations

import logging

import redis as redis_lib
from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from service.losant import errors as losant_errors

log = logging.getLogger(__name__)

_TYPES = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    413: "PayloadTooLarge",
    415: "UnsupportedMediaType",
    429: "RateLimited",
    500: "InternalError",
    502: "BadGateway",
    503: "Unavailable",
}


class ApiError(Exception):
    """An error to answer with: status, a type name and a message fit for the caller."""

    def __init__(
        self, status: int, message: str, *, type: str | None = None, headers: dict | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type = type or _TYPES.get(status, "Error")
        self.message = message
        self.headers = headers or {}


def error_response(
    status: int, message: str, type: str | None = None, headers: dict | None = None
) -> Response:
    response = jsonify({"type": type or _TYPES.get(status, "Error"), "message": message})
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    headers = {k: v for k, v in exc.get_headers() if k.lower() not in ("content-type",)}
    messages = {
        404: "no such resource",
        405: "method not allowed",
        413: "the request body is too large",
    }
    return error_response(status, messages.get(status) or exc.description or "", headers=headers)


def _api_error(exc: ApiError) -> Response:
    return error_response(exc.status, exc.message, exc.type, exc.headers)


def _redis_error(exc: redis_lib.RedisError) -> Response:
    log.error("Redis is unavailable: %s", exc)
    return error_response(503, "the service's storage is unavailable; try again shortly")


def _losant_error(exc: losant_errors.LosantError) -> Response:
    status = getattr(exc, "status", None)
    if isinstance(exc, losant_errors.NotFound):
        return error_response(404, str(exc))
    if isinstance(exc, losant_errors.BadRequest):
        return error_response(400, f"Losant rejected the request: {exc}")
    if isinstance(exc, losant_errors.RateLimited):
        retry_after = getattr(exc, "retry_after", None)
        headers = {"Retry-After": str(int(retry_after))} if retry_after else {}
        return error_response(
            429, "Losant is rate limiting requests; try again later", headers=headers
        )
    if isinstance(exc, losant_errors.OutcomeUnknown):
        return error_response(
            503, f"Losant did not confirm the request; it may or may not have been applied: {exc}"
        )
    if isinstance(exc, losant_errors.Unauthorized):
        return error_response(503, "Losant refused nbrelay's API token")
    log.warning("Losant error (status %s): %s", status, exc)
    return error_response(503, f"Losant is unavailable: {exc}")


def _unexpected(exc: Exception) -> Response:
    log.exception("unhandled error while answering a request")
    return error_response(500, "internal error")


def init_app(app: Flask) -> None:
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(redis_lib.RedisError, _redis_error)
    app.register_error_handler(losant_errors.LosantError, _losant_error)
    app.register_error_handler(Exception, _unexpected)
