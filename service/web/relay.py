"""`POST /hooks/losant`: the relay for Losant workflows (Notebook Trigger -> HTTP node).

Authenticated by `Authorization: Bearer $NBRELAY_INGEST_TOKEN` or by a Standard Webhooks
signature made with that token as the secret. The sender is authenticated before its body is
read: the bearer token entirely, a signature by its headers (id, timestamp, a `v1` signature),
so that an unauthenticated request never holds a thread reading a slow or large body; a signed
body is then read (bounded) and verified. The body names the notebook: a Notebook Trigger
payload `{data: {success, notebook, execution}}` or a bare execution record, of the configured
Losant application only (nbrelay syncs with its own Losant token).
"""

from __future__ import annotations

from flask import Blueprint, request

from service import metrics, standard_webhooks
from service.events.hints import Incoming, parse_hint
from service.web.auth import bearer_token, token_matches
from service.web.errors import ApiError
from service.web.ingest import acknowledge, read_hint_body
from service.web.resources import get_components

bp = Blueprint("relay", __name__)


def _unauthorized() -> ApiError:
    metrics.CALLBACKS_REJECTED.labels("hook", "unauthorized").inc()
    return ApiError(
        401,
        "a bearer token or Standard Webhooks signature (NBRELAY_INGEST_TOKEN) is required",
        headers={"WWW-Authenticate": 'Bearer realm="nbrelay"'},
    )


@bp.post("/hooks/losant")
def relay():
    components = get_components()
    secret = components.settings.ingest_token
    signed = None
    if not token_matches(bearer_token(), secret):
        try:
            if not secret:
                raise standard_webhooks.InvalidSignature("no NBRELAY_INGEST_TOKEN")
            signed = standard_webhooks.signed_request(request.headers)
        except standard_webhooks.InvalidSignature:
            raise _unauthorized() from None
    body = read_hint_body("hook")
    message_id = None
    if signed is not None:
        try:
            message_id = standard_webhooks.verify(secret or "", signed, body)
        except standard_webhooks.InvalidSignature:
            raise _unauthorized() from None
    if not request.is_json:
        metrics.CALLBACKS_REJECTED.labels("hook", "media-type").inc()
        raise ApiError(415, "the relay accepts application/json bodies only")
    hint = parse_hint(body)
    if hint.payload is None:
        metrics.CALLBACKS_REJECTED.labels("hook", "malformed").inc()
        raise ApiError(400, "the body is not a JSON object")
    if not (hint.application_id and hint.notebook_id):
        metrics.CALLBACKS_REJECTED.labels("hook", "malformed").inc()
        raise ApiError(
            400,
            "the body names no notebook: expected a Notebook Trigger payload "
            "{data: {notebook, execution}} or an execution with applicationId and notebookId",
        )
    configured = components.settings.losant_application_id
    if hint.application_id != configured:
        metrics.CALLBACKS_REJECTED.labels("hook", "foreign-application").inc()
        raise ApiError(
            403,
            f"the relay accepts executions of the application {configured} only"
            if configured
            else "the relay is disabled: LOSANT_APPLICATION_ID is not set",
        )
    accepted = components.ingress.accept(
        Incoming("hook", hint.application_id, hint.notebook_id, body, request.content_type, hint),
        message_id=message_id,
    )
    return acknowledge(accepted, "hook")
