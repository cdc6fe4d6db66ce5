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
import re
import time
from dataclasses import dataclass
from typing import Protocol

from service import defaults

SECRET_PREFIX = "whsec_"
_MESSAGE_ID = re.compile(r"[\x21-\x7e]{1,256}")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")  # seconds since epoch; 12 digits reach the year 33658


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


@dataclass(frozen=True)
class SignedRequest:
    """The signature headers of a request, checked before its body is read."""

    message_id: str
    timestamp: int
    signatures: tuple[str, ...]


def signed_request(
    request_headers: HeaderLookup,
    *,
    tolerance: int = defaults.WEBHOOK_TOLERANCE,
    now: float | None = None,
) -> SignedRequest:
    """The signature headers of a request, or InvalidSignature: a `webhook-id` of printable
    ASCII (at most 256 characters), a `webhook-timestamp` of decimal digits only (no sign,
    space, fraction or exponent) within `tolerance` seconds of now, and at least one `v1,`
    signature. Nothing here needs the body, so a request that fails is refused unread."""
    message_id = request_headers.get("webhook-id", "")
    stamp = request_headers.get("webhook-timestamp", "")
    signatures = tuple(
        value
        for value in request_headers.get("webhook-signature", "").split(" ")
        if value.startswith("v1,")
    )
    if not (message_id and stamp and signatures):
        raise InvalidSignature("missing webhook-id, webhook-timestamp or webhook-signature")
    if not _MESSAGE_ID.fullmatch(message_id):
        raise InvalidSignature("webhook-id is not printable ASCII of at most 256 characters")
    if not _TIMESTAMP.fullmatch(stamp):
        raise InvalidSignature("webhook-timestamp is not a number of seconds")
    timestamp = int(stamp)
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        raise InvalidSignature("webhook-timestamp is too far from the current time")
    return SignedRequest(message_id, timestamp, signatures)


def verify(secret: str, signed: SignedRequest, body: bytes) -> str:
    """The message id when one of the request's signatures signs `body` with `secret`;
    InvalidSignature otherwise. Every signature is compared in constant time."""
    expected = signature(secret, signed.message_id, signed.timestamp, body).encode()
    valid = False
    for candidate in signed.signatures:
        valid |= hmac.compare_digest(candidate.encode(), expected)
    if not valid:
        raise InvalidSignature("no matching signature")
    return signed.message_id
