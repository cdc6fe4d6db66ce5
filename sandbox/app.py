"""The Flask application of the sandbox: Losant routes, sandbox-only routes, file downloads."""

from __future__ import annotations

import logging

from flask import Flask, Response, g, jsonify, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException
from werkzeug.exceptions import MethodNotAllowed as HttpMethodNotAllowed

from sandbox import api, application_files, control, data_tables, downloads
from sandbox.errors import (
    ApiError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
    ValidationFailed,
)
from sandbox.services import Services

log = logging.getLogger(__name__)

# Open to all; application files check `g.authorized` themselves, for their private files.
OPEN_ENDPOINTS = frozenset({"downloads.download", "control.health", "application_files.download"})


def create_app(services: Services) -> Flask:
    """An app over already built services (`SandboxServer` starts and stops them)."""
    app = Flask("sandbox")
    app.config["MAX_CONTENT_LENGTH"] = services.settings.upload_limit
    app.json.sort_keys = False  # type: ignore[attr-defined]  # on Flask's default provider
    # Losant paths are exact: no redirects (HTML) for a trailing or doubled slash, just 404.
    app.url_map.strict_slashes = False
    app.url_map.merge_slashes = False
    app.extensions["sandbox"] = services

    @app.before_request
    def authenticate() -> None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        scopes = services.tokens.scopes(token) if scheme == "Bearer" and token else None
        g.authorized = scopes is not None
        if scopes is None:
            if request.endpoint in OPEN_ENDPOINTS:
                return
            raise Unauthorized("A valid bearer token is required")
        g.token, g.scopes = token, scopes

    _register_error_handlers(app)
    app.register_blueprint(api.blueprint)
    app.register_blueprint(control.blueprint)
    app.register_blueprint(downloads.blueprint)
    app.register_blueprint(application_files.blueprint)
    app.register_blueprint(data_tables.blueprint)
    return app


def _error_response(error: ApiError) -> Response:
    response = jsonify({"type": error.type, "message": error.message})
    response.status_code = error.status
    response.headers.update(error.headers)
    return response


def _register_error_handlers(app: Flask) -> None:
    """Every failure, including routing and size errors raised by werkzeug, becomes JSON."""

    @app.errorhandler(ApiError)
    def api_error(error: ApiError) -> ResponseReturnValue:
        return _error_response(error)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> ResponseReturnValue:
        if isinstance(error, HttpMethodNotAllowed):
            response = _error_response(MethodNotAllowed(f"{request.method} is not allowed"))
            response.headers["Allow"] = ", ".join(error.valid_methods or ())
            return response
        if error.code == 404:
            return _error_response(NotFound(f"Path {request.path} was not found"))
        if error.code == 413:
            return _error_response(PayloadTooLarge("Request entity too large"))
        if error.code == 400:
            return _error_response(ValidationFailed(error.description or "Malformed request"))
        if error.code is not None and 400 <= error.code < 500:
            name = error.name.replace(" ", "")
            return _error_response(ApiError(error.description or error.name, error.code, name))
        log.error("HTTP error %s on %s %s", error.code, request.method, request.path)
        return _error_response(ApiError("Internal server error"))

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> ResponseReturnValue:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _error_response(ApiError("Internal server error"))
