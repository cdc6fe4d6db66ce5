"""Which listener serves which routes.

The public surface is what Losant and the load balancer must reach without credentials:
callbacks, the workflow relay and the health probes. Everything else — the dashboard, the
management API and /metrics — is the admin surface, and needs credentials wherever it is served.

With one listener (the default) it serves both surfaces. With an admin listener
(`nbrelay web --admin-bind HOST:PORT`, or NBRELAY_ADMIN_BIND), the public listener answers 404
for everything but the public surface, and the admin listener serves everything. gunicorn sets
`SERVER_PORT` from the listening socket a request came in on (not from the Host header), which
tells the two apart.
"""

from __future__ import annotations

from flask import Flask, abort, current_app, request

PUBLIC_ENDPOINTS = frozenset({"callbacks.receive", "relay.relay", "ops.healthz", "ops.readyz"})
_ADMIN_PORT = "NBRELAY_ADMIN_PORT"


def init_app(app: Flask, admin_port: int | None) -> None:
    app.config[_ADMIN_PORT] = admin_port
    if admin_port is not None:
        app.before_request(_only_public_on_public_listener)


def has_admin_listener() -> bool:
    return current_app.config[_ADMIN_PORT] is not None


def on_admin_listener() -> bool:
    """Whether this request came in on the admin listener."""
    port = current_app.config[_ADMIN_PORT]
    return port is not None and request.environ.get("SERVER_PORT") == str(port)


def _only_public_on_public_listener() -> None:
    if request.endpoint not in PUBLIC_ENDPOINTS and not on_admin_listener():
        abort(404)
