"""Standard Webhooks signatures: `v1,` + base64 HMAC-SHA256 over `id.timestamp.body`, keyed by
the base64 bytes of a `whsec_` secret. Both the sender (the webhook channel) and a receiver use
these functions."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

SECRET_PREFIX = "whsec_"
MIN_KEY_BYTES = 24
MAX_KEY_BYTES = 64


def secret_key(secret: str) -> bytes:
    """The HMAC key inside a `whsec_<base64>` secret; ValueError when it is malformed."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"must start with {SECRET_PREFIX}")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"must be {SECRET_PREFIX} followed by base64") from None
    if not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
        raise ValueError(f"must hold {MIN_KEY_BYTES} to {MAX_KEY_BYTES} bytes of key")
    return key


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header value for one delivery."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(secrets: list[str], message_id: str, timestamp: int, body: bytes, header: str) -> bool:
    """Whether any `v1,` signature in `header` (space-separated) matches any of `secrets`.

    Checking the timestamp's freshness is the caller's business.
    """
    offered = [part[3:] for part in header.split() if part.startswith("v1,")]
    for secret in secrets:
        expected = sign(secret, message_id, timestamp, body)[3:]
        if any(hmac.compare_digest(expected, candidate) for candidate in offered):
            return True
    return False
