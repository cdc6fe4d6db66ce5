"""`POST /callbacks/<token>`: the target of every callbackUrl nbrelay hands to Losant."""

from __future__ import annotations

from flask import Blueprint, request

from service import metrics
from service.doctor import record_probe
from service.events import tokens
from service.events.hints import Incoming, parse_hint
from service.web.errors import ApiError
from service.web.ingest import acknowledge, read_hint_body
from service.web.resources import get_components

bp = Blueprint("callbacks", __name__)


@bp.post("/callbacks/<token>")
def receive(token: str):
    """Any body is accepted as a hint; only the signed token says which notebook to sync.
    A token that does not verify is answered like an unknown URL, and nothing is read or
    recorded. A probe token of `nbrelay doctor` is only noted (204), its body unread."""
    components = get_components()
    try:
        claims = tokens.verify(token, components.settings.secrets)
    except tokens.InvalidToken as exc:
        metrics.CALLBACKS_REJECTED.labels("callback", exc.reason).inc()
        raise ApiError(404, "no such resource") from None
    if isinstance(claims, tokens.ProbeClaims):
        record_probe(components.redis, claims)
        return "", 204
    body = read_hint_body("callback")
    accepted = components.ingress.accept(
        Incoming(
            "callback",
            claims.application_id,
            claims.notebook_id,
            body,
            request.content_type,
            parse_hint(body),
            run=claims.run,
            step=claims.step,
        )
    )
    return acknowledge(accepted, "callback")
