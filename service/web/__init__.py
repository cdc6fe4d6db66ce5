"""The web process: callbacks, the workflow relay, the management API, the dashboard and the
operational endpoints, one blueprint each. It only translates HTTP: the domain lives below
`service/`, reached through the app's `Components`, and nothing here calls Losant except
`POST /api/notebooks/<id>/executions`."""

from __future__ import annotations

from flask import Flask

from service import defaults
from service.composition import Components
from service.config import Settings
from service.web import api, callbacks, dashboard, errors, ops, pipelines, relay
from service.web.resources import EXTENSION


def create_app(settings: Settings | None = None, *, components: Components | None = None) -> Flask:
    """Build the app for `settings` (default: the environment), or around existing
    components."""
    if components is None:
        components = Components.from_settings(settings or Settings.from_env())
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = defaults.MAX_BODY_BYTES
    app.json.sort_keys = False  # type: ignore[attr-defined]  # on Flask's default provider
    app.extensions[EXTENSION] = components
    errors.init_app(app)
    for blueprint in (callbacks.bp, relay.bp, api.bp, pipelines.bp, ops.bp, dashboard.bp):
        app.register_blueprint(blueprint)
    return app
