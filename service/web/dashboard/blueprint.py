"""The dashboard's blueprint: the sign-in guard, CSRF protection, security headers, template
globals, and `answer`, what every button's POST returns."""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit

from flask import Blueprint, Response, redirect, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from service.web import session

bp = Blueprint(
    "dashboard",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)

OPEN_ENDPOINTS = frozenset({"dashboard.sign_in_form", "dashboard.sign_in", "dashboard.static"})
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; connect-src 'self'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
}
NOTICE_LEVELS = ("done", "error")


@bp.before_request
def require_sign_in() -> BaseResponse | None:
    """Every page but the sign-in form needs a signed-in session; others go to the form."""
    if request.endpoint in OPEN_ENDPOINTS or session.signed_in():
        return None
    target = request.full_path if request.query_string else request.path
    form = url_for("dashboard.sign_in_form", next=target)
    if from_htmx():  # a poll or a button: the whole page goes to the form, not a fragment
        return Response(status=204, headers={"HX-Redirect": form})
    return redirect(form, 303)


def from_htmx() -> bool:
    return request.headers.get("HX-Request") == "true"


session.protect(bp)


@bp.after_request
def security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if request.endpoint == "dashboard.static":
        response.headers["Cache-Control"] = "public, max-age=3600"
    return response


@bp.app_template_global("dashboard_signed_in")
def dashboard_signed_in() -> bool:
    return session.signed_in()


@bp.app_template_global("dashboard_notice")
def dashboard_notice() -> tuple[str, str] | None:
    """The notice a button's answer asked to show: (level, text), if any."""
    text = request.args.get("notice")
    level = request.args.get("level", "done")
    if not text or level not in NOTICE_LEVELS:
        return None
    return level, text[:300]


def local_path(target: str | None) -> str:
    """`target` if it is a path on this site, else the dashboard's overview: never a redirect
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


def answer(target: str, notice: str, *, error: bool = False) -> BaseResponse:
    """What a button's POST answers: back to `target` (a path on this site) with `notice` shown.
    A request from htmx gets an `HX-Redirect` (htmx would otherwise put the next page inside
    the form); a plain form post gets a 303."""
    query = {"notice": notice, "level": "error" if error else "done"}
    path = local_path(target)
    url = f"{path}{'&' if '?' in path else '?'}{urlencode(query)}"
    if from_htmx():
        return Response(status=204, headers={"HX-Redirect": url})
    return redirect(url, 303)
