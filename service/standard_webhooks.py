"""Standard Webhooks signatures (https://www.standardwebhooks.com): HMAC-SHA256 over
`<webhook-id>.<webhook-timestamp>.<body>`, sent as `v1,<base64>` in `webhook-signature`.

A secret written `whsec_<base64>` is used as the bytes it encodes; any other secret as its UTF-8
bytes. The signature header may list several signatures (space-separated) so that a sender can
rotate its secret; one valid signature is enough.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from typing import Protocol

from service import defaults

SECRET_PREFIX = "whsec_"


class HeaderLookup(Protocol):
    """Request headers, read by lowercase name (Werkzeug's `Headers` ignores case)."""

    def get(self, key: str, default: str, /) -> str: ...


class InvalidSignature(Exception):
    """The request carries no valid Standard Webhooks signature."""


def _key(secret: str) -> bytes:
    if secret.startswith(SECRET_PREFIX):
        try:
            return base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
        except binascii.Error:
            pass
    return secret.encode()


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value (`v1,<base64>`) for one message."""
    content = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(secret: str, message_id: str, body: bytes, timestamp: int | None = None) -> dict:
    """The three headers that sign `body` as message `message_id`."""
    stamp = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": signature(secret, message_id, stamp, body),
    }


def verify(
    secret: str,
    request_headers: HeaderLookup,
    body: bytes,
    *,
    tolerance: int = defaults.WEBHOOK_TOLERANCE,
    now: float | None = None,
) -> str:
    """The message id of a correctly signed, fresh message; InvalidSignature otherwise."""
    message_id = request_headers.get("webhook-id", "")
    stamp = request_headers.get("webhook-timestamp", "")
    signatures = request_headers.get("webhook-signature", "")
    if not (message_id and stamp and signatures):
        raise InvalidSignature("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        timestamp = int(stamp)
    except ValueError:
        raise InvalidSignature("webhook-timestamp is not a number") from None
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        raise InvalidSignature("webhook-timestamp is too far from the current time")
    expected = signature(secret, message_id, timestamp, body).encode()
    valid = False
    for candidate in signatures.split():
        valid |= hmac.compare_digest(candidate.encode(), expected)
    if not valid:
        raise InvalidSignature("no matching signature")
    return message_id
