"""Signing in to the dashboard with NBRELAY_API_TOKEN, and out."""

from __future__ import annotations

import logging

from flask import redirect, render_template, request, url_for

from service.web import session
from service.web.auth import token_matches
from service.web.dashboard.blueprint import bp, local_path
from service.web.resources import get_components
from service.web.throttle import SignInThrottle

log = logging.getLogger(__name__)


@bp.get("/signin")
def sign_in_form():
    if not session.enabled():
        return render_template("dashboard/signin.html", enabled=False), 403
    if session.signed_in():
        return redirect(local_path(request.args.get("next")), 303)
    return render_template("dashboard/signin.html", enabled=True, next=request.args.get("next"))


@bp.post("/signin")
def sign_in():
    next_path = request.form.get("next")
    client = request.remote_addr or "unknown"
    throttle = SignInThrottle(get_components().redis)
    wait = throttle.retry_after(client)
    if wait is not None:
        message = f"Too many failed sign-ins; try again in {wait} s."
        page = render_template("dashboard/signin.html", enabled=True, next=next_path, error=message)
        return page, 429, {"Retry-After": str(wait)}
    if not token_matches(request.form.get("token"), get_components().settings.api_token):
        throttle.failed(client)
        log.warning("dashboard sign-in failed", extra={"event": "sign-in-failed", "client": client})
        message = "Wrong token. Sign in with the value of NBRELAY_API_TOKEN."
        page = render_template("dashboard/signin.html", enabled=True, next=next_path, error=message)
        return page, 401
    throttle.succeeded(client)
    session.sign_in()
    return redirect(local_path(next_path), 303)


@bp.post("/signout")
def sign_out():
    session.sign_out()
    return redirect(url_for("dashboard.sign_in_form"), 303)
