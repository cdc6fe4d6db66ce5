"""What can go wrong when nbrelay talks to Losant, as one small hierarchy.

Callers catch `LosantError` broadly or one class narrowly. The classes say what a caller can do
next: fix the request (`BadRequest`), fix the token (`Unauthorized`), give up on the object
(`NotFound`), wait (`RateLimited`, `Unavailable`), or find out first whether a non-idempotent
request went through before sending it again (`OutcomeUnknown`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from typing import Any

from service import defaults
from service.errors import NbrelayError, UsageProblem

MAY_OR_MAY_NOT = (
    "the request may or may not have been applied; check Losant before sending it again"
)


class LosantError(NbrelayError):
    """A Losant API call failed.

    `status` is the HTTP status (None when no answer came), `type` and `message` are Losant's
    error `type` and `message` (or nbrelay's description of a transport failure), `request`
    names the call ("GET /applications/…/notebooks"). None of them ever holds the API token.
    """

    def __init__(
        self,
        message: str,
        status: int | None = None,
        type: str | None = None,  # noqa: A002 - Losant's own name for the field
        request: str | None = None,
    ) -> None:
        self.message = message
        self.status = status
        self.type = type
        self.request = request
        super().__init__(self._describe())

    def _describe(self) -> str:
        code = " ".join(str(part) for part in (self.status, self.type) if part)
        where = f"Losant {self.request}" if self.request else "Losant"
        return f"{where}: {code}: {self.message}" if code else f"{where}: {self.message}"

    def __reduce__(self) -> tuple[Any, ...]:
        # Keeps the fields when the exception crosses a process boundary (RQ pickles failures).
        return (self.__class__, (self.message, self.status, self.type, self.request), self.__dict__)


class BadRequest(LosantError):
    """Losant rejected the request as malformed (400 `Validation` and other 4xx answers)."""


class Unauthorized(LosantError):
    """The token is missing, wrong, expired or lacks the scope (401, 403)."""


class NotFound(LosantError):
    """The application, notebook or execution does not exist (404), or no notebook has that name."""


class AmbiguousNotebook(LosantError, UsageProblem):
    """Several notebooks share the name that was asked for; only the id tells them apart."""


class RateLimited(LosantError):
    """Losant answered 429. `retry_after` is its requested wait in seconds, when it sent one."""

    retry_after: float | None = None


class Unavailable(LosantError):
    """Losant could not be reached or failed (5xx, connection error, timeout) for a request that
    was safe to repeat and was retried as far as the policy allows. Nothing is left half-done."""


class OutcomeUnknown(LosantError):
    """A non-idempotent request (execute, create, upload, input-data export) failed after it was
    sent: it may or may not have been applied. Check Losant before sending it again."""


class InvalidResponse(LosantError):
    """Losant answered success with a body that is not the documented shape."""


def error_for_status(
    status: int,
    body: Any,
    *,
    request: str,
    repeatable: bool,
    retry_after: float | None = None,
    redact: str | None = None,
) -> LosantError:
    """The exception for an HTTP error answer.

    `body` is the parsed JSON (a Losant `{"type","message"}`) or anything else, e.g. the text of an
    HTML error page, which is not quoted: the status phrase says enough. A 5xx answer to a request
    that is not `repeatable` leaves its fate unknown. `redact` (the token) is cut out of Losant's
    words in case a server echoes it.
    """
    losant_type, message = _losant_error(body)
    if message is None:
        message = _phrase(status)
    message = clean(message, redact)
    losant_type = clean(losant_type, redact) if losant_type else None
    if status >= 500 and not repeatable:
        message = f"{message}; {MAY_OR_MAY_NOT}"
        return OutcomeUnknown(message, status, losant_type, request)
    if status >= 500:
        return Unavailable(message, status, losant_type, request)
    if status == 429:
        error = RateLimited(message, status, losant_type, request)
        error.retry_after = retry_after
        return error
    if status in (401, 403):
        return Unauthorized(message, status, losant_type, request)
    if status == 404:
        return NotFound(message, status, losant_type, request)
    return BadRequest(message, status, losant_type, request)


def clean(text: str, redact: str | None = None) -> str:
    """One short line of `text`, with `redact` (a secret) cut out wherever it appears."""
    if redact:
        text = text.replace(redact, "[redacted]")
    text = " ".join(text.split())
    if len(text) > defaults.LOSANT_ERROR_LENGTH:
        text = text[: defaults.LOSANT_ERROR_LENGTH - 1] + "…"
    return text


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header: delta-seconds or an HTTP date (RFC 9110).

    Returns None when the header is absent or unreadable, 0 for a date in the past.
    """
    if not value or not value.strip():
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _losant_error(body: Any) -> tuple[str | None, str | None]:
    if not isinstance(body, dict):
        return None, None
    losant_type, message = body.get("type"), body.get("message")
    return (
        losant_type if isinstance(losant_type, str) and losant_type else None,
        message if isinstance(message, str) and message else None,
    )


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"
