"""The web process: callbacks, the workflow relay, the management API, the dashboard and the
operational endpoints, one blueprint each. It only translates HTTP: the domain lives in
`service/`, and nothing here calls Losant except `POST /api/notebooks/<id>/executions`."""

from __future__ import annotations

from flask import Flask

from service import defaults
from service.config import Settings
from service.context import Context


def create_app(settings: Settings | None = None, *, ctx: Context | None = None) -> Flask:
    """Build the app for `settings` (default: the environment), or around an existing Context."""
    from service.web import api, callbacks, dashboard, errors, hooks, ops, pipelines

    if ctx is None:
        ctx = Context.from_settings(settings or Settings.from_env())
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = defaults.MAX_BODY_BYTES
    app.json.sort_keys = False
    app.extensions["nbrelay"] = ctx
    errors.init_app(app)
    for blueprint in (callbacks.bp, hooks.bp, api.bp, pipelines.bp, ops.bp, dashboard.bp):
        app.register_blueprint(blueprint)
    return app
