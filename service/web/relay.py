"""`POST /hooks/losant`: the relay for Losant workflows (Notebook Trigger -> HTTP node).

Authenticated by `Authorization: Bearer $NBRELAY_INGEST_TOKEN` or by a Standard Webhooks
signature made with that token as the secret. The body names the notebook: a Notebook Trigger
payload `{data: {success, notebook, execution}}` or a bare execution record.
"""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from service import defaults, keys, metrics, standard_webhooks
from service.events.hints import Incoming, parse_hint
from service.web.auth import bearer_token, token_matches
from service.web.errors import ApiError
from service.web.resources import get_components

bp = Blueprint("relay", __name__)


@bp.post("/hooks/losant")
def relay():
    components = get_components()
    secret = components.settings.ingest_token
    body = request.get_data(cache=False)
    message_id = None
    if not token_matches(bearer_token(), secret):
        try:
            if not secret:
                raise standard_webhooks.InvalidSignature("no NBRELAY_INGEST_TOKEN")
            message_id = standard_webhooks.verify(secret, request.headers, body)
        except standard_webhooks.InvalidSignature:
            metrics.CALLBACKS_REJECTED.labels("hook", "unauthorized").inc()
            raise ApiError(
                401,
                "a bearer token or Standard Webhooks signature (NBRELAY_INGEST_TOKEN) is required",
                headers={"WWW-Authenticate": 'Bearer realm="nbrelay"'},
            ) from None
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
    if message_id is not None and not components.redis.set(
        keys.webhook_seen(message_id), "1", nx=True, ex=2 * defaults.WEBHOOK_TOLERANCE
    ):
        return jsonify({"accepted": True, "duplicate": True}), 202
    components.ingress.accept(
        Incoming("hook", hint.application_id, hint.notebook_id, body, request.content_type, hint)
    )
    metrics.CALLBACKS_RECEIVED.labels("hook").inc()
    return jsonify({"accepted": True}), 202
