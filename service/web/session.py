"""The dashboard's session cookie and the CSRF protection of every state-changing browser request.

A session is a cookie `<payload>.<signature>`: the payload (base64url JSON) says whether the
holder signed in, carries the session's CSRF token and its expiry; the signature is an
HMAC-SHA256 under a key derived from NBRELAY_SECRET and NBRELAY_API_TOKEN, so every worker and
process agrees on it, and changing the API token ends every session. The first secret signs,
every configured one verifies (rotation as for callback tokens). The cookie is `HttpOnly`,
`SameSite=Strict`, lasts `DASHBOARD_SESSION_LIFETIME` and is `Secure` when NBRELAY_PUBLIC_URL
or the request is https.

Signing out ends the session for good: its id (a digest of its CSRF token, which is unique to
it) is kept in Redis until the session would have expired, so a copy of the cookie is refused
too.

Every visitor gets a session, signed in or not, so the sign-in form has a CSRF token too.
`protect(bp)` puts a blueprint under this: its POST, PUT, PATCH and DELETE requests need a
same-origin `Origin` (or `Sec-Fetch-Site`) and the session's token in the form field
`csrf_token`; templates write that field with `{{ csrf_field() }}`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import Blueprint, Response, g, request
from markupsafe import Markup

from service import defaults, keys
from service.config import Settings
from service.web.errors import ApiError
from service.web.resources import get_components

COOKIE = "nbrelay_session"
CSRF_FIELD = "csrf_token"
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_KEY_LABEL = b"nbrelay dashboard session v1\x00"


@dataclass(frozen=True)
class Session:
    signed_in: bool
    csrf: str
    expires: int  # seconds since epoch

    @property
    def id(self) -> str:
        """What names the session in Redis: a digest of its CSRF token, never the token."""
        return hashlib.sha256(self.csrf.encode()).hexdigest()[:32]


def signing_keys(settings: Settings) -> list[bytes]:
    """The cookie keys, one per NBRELAY_SECRET (the first signs); none when sign-in is
    disabled (no NBRELAY_API_TOKEN or no NBRELAY_SECRET)."""
    if not settings.api_token or not settings.secrets:
        return []
    message = _KEY_LABEL + settings.api_token.encode()
    return [hmac.new(s.encode(), message, hashlib.sha256).digest() for s in settings.secrets]


class SessionCodec:
    """Issues, signs and verifies sessions under `keys`; `clock` gives seconds since epoch."""

    def __init__(
        self,
        keys: Sequence[bytes],
        lifetime: int = defaults.DASHBOARD_SESSION_LIFETIME,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not keys:
            raise ValueError("a session needs at least one signing key")
        self.keys = list(keys)
        self.lifetime = lifetime
        self.clock = clock

    def new(self, *, signed_in: bool) -> Session:
        expires = int(self.clock()) + self.lifetime
        return Session(signed_in=signed_in, csrf=secrets.token_urlsafe(32), expires=expires)

    def encode(self, session: Session) -> str:
        payload = json.dumps(
            {"in": session.signed_in, "csrf": session.csrf, "exp": session.expires},
            separators=(",", ":"),
        ).encode()
        body = _b64(payload)
        return f"{body}.{_b64(self._mac(self.keys[0], body))}"

    def decode(self, value: str) -> Session | None:
        """The session in a cookie value, or None if it is malformed, forged or expired."""
        body, _, signature = value.partition(".")
        try:
            presented = _unb64(signature)
            if not any(hmac.compare_digest(presented, self._mac(k, body)) for k in self.keys):
                return None
            data = json.loads(_unb64(body))
            session = Session(
                signed_in=data["in"] is True, csrf=str(data["csrf"]), expires=int(data["exp"])
            )
        except (binascii.Error, ValueError, KeyError, TypeError):
            return None
        return session if session.expires > self.clock() and session.csrf else None

    @staticmethod
    def _mac(key: bytes, body: str) -> bytes:
        return hmac.new(key, body.encode(), hashlib.sha256).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# The session of the current request


def enabled() -> bool:
    """Whether the dashboard can be signed in to (NBRELAY_API_TOKEN and NBRELAY_SECRET set)."""
    return bool(signing_keys(get_components().settings))


def _codec() -> SessionCodec:
    return SessionCodec(signing_keys(get_components().settings))


def current() -> Session:
    """This request's session: the cookie's, else a new one that is not signed in (and is sent
    with the answer)."""
    if "nbrelay_session" not in g:
        codec = _codec()
        found = codec.decode(request.cookies.get(COOKIE, ""))
        g.nbrelay_session = found or codec.new(signed_in=False)
        g.nbrelay_session_changed = found is None
    return g.nbrelay_session


def signed_in() -> bool:
    if not (enabled() and current().signed_in):
        return False
    return not get_components().redis.exists(keys.ended_session(current().id))


def sign_in() -> None:
    """Start a signed-in session; a new one, with a new CSRF token."""
    g.nbrelay_session = _codec().new(signed_in=True)
    g.nbrelay_session_changed = True


def sign_out() -> None:
    """End the session, in Redis for every copy of the cookie; the answer removes it."""
    ended = current()
    remaining = ended.expires - int(time.time())
    if ended.signed_in and remaining > 0:
        get_components().redis.set(keys.ended_session(ended.id), "1", ex=remaining)
    g.nbrelay_session = None
    g.nbrelay_session_changed = True


def _save(response: Response) -> Response:
    if not g.get("nbrelay_session_changed"):
        return response
    session: Session | None = g.nbrelay_session
    public_url = get_components().settings.public_url or ""
    secure = request.is_secure or public_url.startswith("https://")
    if session is None:
        response.delete_cookie(COOKIE, httponly=True, secure=secure, samesite="Strict")
    else:
        response.set_cookie(
            COOKIE,
            _codec().encode(session),
            max_age=max(0, session.expires - int(time.time())),
            expires=session.expires,
            httponly=True,
            secure=secure,
            samesite="Strict",
        )
    return response


def _same_origin() -> bool:
    origin = request.headers.get("Origin")
    if origin is None:
        return request.headers.get("Sec-Fetch-Site", "same-origin") in ("same-origin", "none")
    try:
        parts = urlsplit(origin)
    except ValueError:  # not a URL (e.g. an unclosed IPv6 bracket): no origin of ours
        return False
    public = urlsplit(get_components().settings.public_url or "")
    return parts.scheme in ("http", "https") and (
        parts.netloc == request.host or (parts.scheme, parts.netloc) == public[:2]
    )


def require_csrf() -> None:
    """`before_request` of a protected blueprint: a state-changing request must come from a
    page of this origin and carry the session's CSRF token."""
    if request.method not in STATE_CHANGING:
        return
    if not enabled():
        raise ApiError(403, "sign-in is disabled: NBRELAY_API_TOKEN or NBRELAY_SECRET is not set")
    if not _same_origin():
        raise ApiError(403, "cross-site request refused")
    presented = request.form.get(CSRF_FIELD, "")
    if not hmac.compare_digest(presented.encode(), current().csrf.encode()):
        raise ApiError(403, "missing or wrong CSRF token; reload the page and try again")


def csrf_field() -> Markup:
    """The hidden form field with this session's CSRF token."""
    return Markup('<input type="hidden" name="{}" value="{}">').format(CSRF_FIELD, current().csrf)


def protect(bp: Blueprint) -> None:
    """Put `bp` under CSRF protection and keep its session cookie up to date."""
    bp.before_request(require_csrf)
    bp.after_request(_save)
    bp.add_app_template_global(csrf_field, "csrf_field")
