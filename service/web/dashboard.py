"""The dashboard: a small server-rendered view of recent executions and of the service's state,
for people signed in with NBRELAY_API_TOKEN (`session` keeps the sign-in and guards every form
against cross-site requests; `throttle` brakes guessing).

It never shows tokens, callback URLs or configuration values. What users put in an execution's
`templateContext`, its `inputInfo` and the signed URLs of its outputs are hidden unless the
execution page is asked to reveal them (`?reveal=1`); output links go through
`/executions/<id>/outputs/<name>`, which redirects to the signed URL.
"""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, abort, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from service import defaults, keys
from service.config import OBJECT_ID
from service.events.records import STATUSES, ExecutionRecord
from service.web import session
from service.web.auth import token_matches
from service.web.resources import get_components
from service.web.throttle import SignInThrottle

log = logging.getLogger(__name__)

bp = Blueprint("dashboard", __name__, template_folder="templates")

TIMESTAMPS = (
    ("runQueuedAt", "queued"),
    ("runStartedAt", "started"),
    ("inputsCompletedAt", "inputs ready"),
    ("notebookCompletedAt", "notebook done"),
    ("outputsCompletedAt", "outputs saved"),
)
HIDDEN = "(hidden)"
OPEN_ENDPOINTS = frozenset({"dashboard.sign_in_form", "dashboard.sign_in"})
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
}


@bp.before_request
def require_sign_in() -> BaseResponse | None:
    """Every page but the sign-in form needs a signed-in session; others go to the form."""
    if request.endpoint in OPEN_ENDPOINTS or session.signed_in():
        return None
    target = request.full_path if request.query_string else request.path
    return redirect(url_for("dashboard.sign_in_form", next=target), 303)


session.protect(bp)


@bp.after_request
def security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


@bp.app_template_global("dashboard_signed_in")
def dashboard_signed_in() -> bool:
    return session.signed_in()


def local_path(target: str | None) -> str:
    """`target` if it is a path on this site, else the dashboard's index: never a redirect
    elsewhere (`//host`, `/\\host`, `https://host`, control characters)."""
    if (
        not target
        or not target.startswith("/")
        or target.startswith("//")
        or "\\" in target
        or any(ord(c) < 0x20 or ord(c) == 0x7F for c in target)
        or urlsplit(target).netloc
    ):
        return url_for("dashboard.index")
    return target


# signing in and out


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


# pages


@bp.get("/")
def index():
    components = get_components()
    status = request.args.get("status")
    statuses = [status] if status in STATUSES else []
    page = components.store.query(
        application_id=None, statuses=statuses, limit=defaults.DASHBOARD_ROWS
    )
    now = time.time()
    dirty, oldest_dirty = components.store.sync_backlog(now)
    names = components.store.notebook_names()
    return render_template(
        "dashboard/index.html",
        warnings=components.unseen.all_warnings(names),
        executions=page.items,
        names=names,
        ref=keys.notebook_ref,
        counts=components.store.count_by_status(),
        statuses=STATUSES,
        selected=status if statuses else None,
        queues=components.queues.stats(now),
        dirty=dirty,
        oldest_dirty=oldest_dirty,
        pending=components.store.pending_count(),
        events=components.store.events(defaults.DASHBOARD_EVENTS),
    )


@bp.get("/executions/<execution_id>")
def execution(execution_id: str):
    components = get_components()
    record = _stored(execution_id)
    reveal = request.args.get("reveal") == "1"
    context = record.template_context
    return render_template(
        "dashboard/execution.html",
        record=record,
        view=record.as_json(),
        name=components.store.notebook_names().get(
            keys.notebook_ref(record.application_id, record.notebook_id)
        ),
        timestamps=TIMESTAMPS,
        reveal=reveal,
        context=context,
        context_keys=sorted(context) if isinstance(context, dict) else [],
        shown=(record.losant or {}) if reveal else masked(record.losant or {}),
    )


@bp.get("/executions/<execution_id>/outputs/<path:name>")
def output(execution_id: str, name: str):
    """The signed download URL of one output file, for a signed-in user only."""
    info = ((_stored(execution_id).losant or {}).get("outputInfo") or {}).get(name)
    url = info.get("url") if isinstance(info, dict) else None
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        abort(404)
    return redirect(url, 302)


def _stored(execution_id: str) -> ExecutionRecord:
    record = get_components().store.get(execution_id) if OBJECT_ID.fullmatch(execution_id) else None
    if record is None:
        abort(404)
    return record


def masked(value: Any, key: str | None = None) -> Any:
    """Losant's record without what users put in it or what grants access: `templateContext`
    and `inputInfo` hidden, every URL hidden."""
    if key in ("templateContext", "inputInfo"):
        return HIDDEN
    if isinstance(value, dict):
        return {k: masked(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v) for v in value]
    if isinstance(value, str) and "://" in value:
        return HIDDEN
    return value
