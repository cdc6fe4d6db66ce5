"""Signed callback tokens: the last path segment of every callbackUrl nbrelay hands to Losant.

Losant signs nothing it POSTs to a callbackUrl, so the URL itself carries the proof: a token that
binds the application, the notebook and (for pipeline steps) the run and step, with its issue and
expiry times, signed with HMAC-SHA256. The payload is packed in binary so that the token stays
short (about 90 characters without a pipeline step, never more than ~300). Verification accepts
any of the configured secrets, so secrets can be rotated while runs started earlier still report.

A second kind of token, the probe, vouches for nothing but a random nonce: `nbrelay doctor` sends
one through NBRELAY_PUBLIC_URL to see that the URL reaches this deployment. Its kind byte is
signed with the rest, so neither kind can pass for the other.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import re
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass

from service import defaults
from service.config import OBJECT_ID

VERSION = 1
PROBE = 2  # the kind byte of a probe token
_DOMAIN = b"nbrelay-callback\x00"  # keeps these MACs apart from any other use of the secret
_HEAD = struct.Struct(">B12s12sII")  # version, application, notebook, issued, expires
_PROBE = struct.Struct(">B16sII")  # PROBE, nonce, issued, expires
_MAC_BYTES = hashlib.sha256().digest_size
_ALPHABET = re.compile(r"[A-Za-z0-9_-]+")


class InvalidToken(Exception):
    """The token is malformed, forged, signed with an unknown secret, or expired.

    `reason` is one of "malformed", "signature", "expired": fit for a metric label, never
    containing the token itself.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(f"invalid callback token ({reason})")
        self.reason = reason


@dataclass(frozen=True)
class CallbackClaims:
    """What a valid token vouches for."""

    application_id: str
    notebook_id: str
    issued_at: int  # s since epoch
    expires_at: int  # s since epoch
    run: str | None = None
    step: str | None = None


@dataclass(frozen=True)
class ProbeClaims:
    """What a valid probe token vouches for: the nonce its sender waits to see arrive."""

    nonce: str  # 32 hexadecimal characters
    expires_at: int  # s since epoch


def sign(
    secret: str,
    application_id: str,
    notebook_id: str,
    *,
    run: str | None = None,
    step: str | None = None,
    ttl: int = defaults.CALLBACK_TOKEN_TTL,
    now: float | None = None,
) -> str:
    """A URL-safe token for callbacks about `notebook_id`, valid for `ttl` seconds.

    ValueError when an id is not a Losant id, or when run and step together would make the
    token longer than `defaults.CALLBACK_TOKEN_MAX_LENGTH`.
    """
    for name, value in (("application id", application_id), ("notebook id", notebook_id)):
        if not OBJECT_ID.fullmatch(value):
            raise ValueError(f"{name} must be 24 hexadecimal characters")
    issued = int(time.time() if now is None else now)
    payload = (
        _HEAD.pack(
            VERSION,
            bytes.fromhex(application_id),
            bytes.fromhex(notebook_id),
            issued,
            issued + ttl,
        )
        + _pack_text(run)
        + _pack_text(step)
    )
    token = _encode(payload + _mac(secret, payload))
    if len(token) > defaults.CALLBACK_TOKEN_MAX_LENGTH:
        raise ValueError(
            f"pipeline run and step names are too long for a callback token "
            f"({len(token)} > {defaults.CALLBACK_TOKEN_MAX_LENGTH} characters)"
        )
    return token


def sign_probe(
    secret: str, nonce: str, *, ttl: int = defaults.DOCTOR_PROBE_TTL, now: float | None = None
) -> str:
    """A URL-safe probe token for `nonce` (16 bytes in hex), valid for `ttl` seconds."""
    issued = int(time.time() if now is None else now)
    payload = _PROBE.pack(PROBE, bytes.fromhex(nonce), issued, issued + ttl)
    return _encode(payload + _mac(secret, payload))


def verify(
    token: str, secrets: Sequence[str], *, now: float | None = None
) -> CallbackClaims | ProbeClaims:
    """The claims of `token` if one of `secrets` signed it and it has not expired.

    Every secret is tried with a constant-time comparison, so neither the position of a wrong
    byte nor which secret matched shows in the timing.
    """
    if not secrets:
        raise InvalidToken("signature")
    if len(token) > defaults.CALLBACK_TOKEN_MAX_LENGTH:
        raise InvalidToken("malformed")
    try:
        raw = _decode(token)
    except (binascii.Error, ValueError):
        raise InvalidToken("malformed") from None
    if _encode(raw) != token:  # only the canonical spelling: one token, one string
        raise InvalidToken("malformed")
    if len(raw) < _PROBE.size + _MAC_BYTES:
        raise InvalidToken("malformed")
    payload, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
    matched = False
    for secret in secrets:
        matched |= hmac.compare_digest(_mac(secret, payload), mac)
    if not matched:
        raise InvalidToken("signature")
    claims = _unpack(payload)
    if (time.time() if now is None else now) >= claims.expires_at:
        raise InvalidToken("expired")
    return claims


def callback_url(public_url: str, token: str) -> str:
    return f"{public_url.rstrip('/')}/callbacks/{token}"


def _mac(secret: str, payload: bytes) -> bytes:
    mac = _keyed(secret).copy()
    mac.update(payload)
    return mac.digest()


@functools.lru_cache(maxsize=16)
def _keyed(secret: str) -> hmac.HMAC:
    """An HMAC under `secret` that has already taken in the domain: each token copies it
    rather than derive the key's pads again (callbacks verify a token each)."""
    return hmac.new(secret.encode(), _DOMAIN, hashlib.sha256)


def _pack_text(value: str | None) -> bytes:
    data = (value or "").encode()
    if len(data) > 255:
        raise ValueError("pipeline run and step names must be at most 255 bytes")
    return bytes([len(data)]) + data


def _unpack(payload: bytes) -> CallbackClaims | ProbeClaims:
    """Parse a payload whose MAC has been checked (so its layout is ours)."""
    if payload[0] == PROBE:
        if len(payload) != _PROBE.size:
            raise InvalidToken("malformed")
        _, nonce, _, expires = _PROBE.unpack(payload)
        return ProbeClaims(nonce.hex(), expires)
    try:
        version, application, notebook, issued, expires = _HEAD.unpack_from(payload)
        if version != VERSION:
            raise InvalidToken("malformed")
        rest = payload[_HEAD.size :]
        run, rest = _unpack_text(rest)
        step, rest = _unpack_text(rest)
        if rest:
            raise InvalidToken("malformed")
    except (struct.error, IndexError, UnicodeDecodeError):
        raise InvalidToken("malformed") from None
    return CallbackClaims(application.hex(), notebook.hex(), issued, expires, run, step)


def _unpack_text(data: bytes) -> tuple[str | None, bytes]:
    length = data[0]
    if len(data) < 1 + length:
        raise IndexError("truncated")
    text = data[1 : 1 + length].decode()
    return text or None, data[1 + length :]


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _decode(token: str) -> bytes:
    if not _ALPHABET.fullmatch(token):
        raise ValueError("not URL-safe base64")
    data = token.encode("ascii")
    return base64.urlsafe_b64decode(data + b"=" * (-len(data) % 4))
