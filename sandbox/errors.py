"""Errors in Losant's form, `{"type", "message"}`, and the Flask handlers that render them."""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error the API answers with: a status code, Losant's error type and a message."""

    status = 500
    type = "InternalServerError"

    def __init__(self, message: str, status: int | None = None, type: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if type is not None:
            self.type = type


class ValidationFailed(ApiError):
    status = 400
    type = "Validation"


class Unauthorized(ApiError):
    status = 401
    type = "Unauthorized"


class NotFound(ApiError):
    status = 404
    type = "NotFound"


class MethodNotAllowed(ApiError):
    status = 405
    type = "MethodNotAllowed"


class PayloadTooLarge(ApiError):
    status = 413
    type = "PayloadTooLarge"


class ScriptedServerError(ApiError):
    """A 500 the notebook's scripted behaviour asked for (`serverErrors`)."""

    status = 500
    type = "InternalServerError"


def error_response(error: ApiError) -> Response:
    response = jsonify({"type": error.type, "message": error.message})
    response.status_code = error.status
    return response


def register(app: Flask) -> None:
    """Every failure, including routing and size errors raised by werkzeug, becomes JSON."""

    @app.errorhandler(ApiError)
    def api_error(error: ApiError) -> ResponseReturnValue:
        return error_response(error)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> ResponseReturnValue:
        if error.code == 405:
            response = error_response(MethodNotAllowed(f"{request.method} is not allowed"))
            response.headers["Allow"] = ", ".join(error.valid_methods or ())
            return response
        if error.code == 404:
            return error_response(NotFound(f"Path {request.path} was not found"))
        if error.code == 413:
            return error_response(PayloadTooLarge("Request entity too large"))
        if error.code == 400:
            return error_response(ValidationFailed(error.description or "Malformed request"))
        if error.code is not None and 400 <= error.code < 500:
            name = error.name.replace(" ", "")
            return error_response(ApiError(error.description or error.name, error.code, name))
        log.error("HTTP error %s on %s %s", error.code, request.method, request.path)
        return error_response(ApiError("Internal server error"))

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> ResponseReturnValue:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(ApiError("Internal server error"))
