"""The web process: callbacks, the workflow relay, the management API, the dashboard and the
operational endpoints, one blueprint each. It only translates HTTP: the domain lives below
`service/`, reached through the app's `Components`, and nothing here calls Losant except
`POST /api/notebooks/<id>/executions`. Only callbacks, the relay and the health probes answer
without credentials; `surfaces` says which listener serves what."""

from __future__ import annotations

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from service import defaults
from service.composition import Components
from service.config import Settings, parse_bind
from service.web import (
    api,
    callbacks,
    dashboard,
    dead_letters,
    errors,
    ops,
    pipelines,
    relay,
    silences,
    surfaces,
)
from service.web.resources import EXTENSION


def create_app(
    settings: Settings | None = None,
    *,
    components: Components | None = None,
    admin_port: int | None = None,
) -> Flask:
    """Build the app for `settings` (default: the environment), or around existing
    components. With `admin_port` (default: the port of NBRELAY_ADMIN_BIND), only requests that
    came in on that port reach the admin surface (see `surfaces`)."""
    if components is None:
        components = Components.from_settings(settings or Settings.from_env())
    if admin_port is None and components.settings.admin_bind:
        admin_port = parse_bind("NBRELAY_ADMIN_BIND", components.settings.admin_bind)[1]
    # No static folder of the app's own: its `/static` route would shadow the dashboard's.
    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = defaults.MAX_BODY_BYTES
    app.json.sort_keys = False  # type: ignore[attr-defined]  # on Flask's default provider
    app.extensions[EXTENSION] = components
    errors.init_app(app)
    surfaces.init_app(app, admin_port)
    blueprints = (
        callbacks.bp,
        relay.bp,
        api.bp,
        pipelines.bp,
        silences.bp,
        dead_letters.bp,
        ops.bp,
        dashboard.bp,
    )
    for blueprint in blueprints:
        app.register_blueprint(blueprint)
    hops = components.settings.trusted_proxies
    if hops:  # the client's address and scheme as the proxies in front of nbrelay saw them
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]
    return app
