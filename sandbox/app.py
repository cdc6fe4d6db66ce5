"""The Flask application of the sandbox: Losant routes, sandbox-only routes, file downloads."""

from __future__ import annotations

import hmac

from flask import Flask, request

from sandbox import api, control, downloads, errors
from sandbox.errors import Unauthorized
from sandbox.services import Services

OPEN_ENDPOINTS = frozenset({"downloads.download", "control.health"})


def create_app(services: Services) -> Flask:
    """An app over already built services (`SandboxServer` starts and stops them)."""
    app = Flask("sandbox")
    app.config["MAX_CONTENT_LENGTH"] = services.settings.upload_limit
    app.json.sort_keys = False
    # Losant paths are exact: no redirects (HTML) for a trailing or doubled slash, just 404.
    app.url_map.strict_slashes = False
    app.url_map.merge_slashes = False
    app.extensions["sandbox"] = services
    expected = f"Bearer {services.settings.token}".encode()

    @app.before_request
    def authenticate() -> None:
        if request.endpoint in OPEN_ENDPOINTS:
            return
        given = request.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            raise Unauthorized("A valid bearer token is required")

    errors.register(app)
    app.register_blueprint(api.blueprint)
    app.register_blueprint(control.blueprint)
    app.register_blueprint(downloads.blueprint)
    return app
