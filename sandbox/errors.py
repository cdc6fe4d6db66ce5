"""The sandbox's exceptions: one hierarchy under `SandboxError`, so callers can catch broadly.

`ApiError` and its subclasses are the errors the API answers with, in Losant's form
`{"type", "message"}`: `sandbox.app` renders them, and `SandboxClient` raises them again from the
answers it gets, so a caller catches the same `NotFound` on either side. No web framework is
imported here: the runner process raises `InputError` and never serves HTTP.
"""

from __future__ import annotations


class SandboxError(Exception):
    """A failure of the sandbox that one line explains."""


class ListenError(SandboxError):
    """The server cannot take its address (the port is in use, the host is not local)."""


class Unavailable(SandboxError):
    """`SandboxClient` could not reach the sandbox, or it did not answer in time."""


class InputError(SandboxError):
    """An input could not be materialised; the run ends `errored` with this message."""

    name = "InputError"


class OutputError(SandboxError):
    """An output could not be delivered; the run ends `errored` with this message."""

    name = "OutputError"


class ApiError(SandboxError):
    """An error the API answers with: a status code, Losant's error type and a message, and
    `headers` for the answer beyond the JSON ones (e.g. `Retry-After`)."""

    status = 500
    type = "InternalServerError"

    def __init__(self, message: str, status: int | None = None, type: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers: dict[str, str] = {}
        if status is not None:
            self.status = status
        if type is not None:
            self.type = type


class ValidationFailed(ApiError):
    status = 400
    type = "Validation"


class Unauthorized(ApiError):
    status = 401
    type = "Unauthorized"


class Forbidden(ApiError):
    """The token is valid but has none of the scopes the action accepts."""

    status = 403
    type = "Forbidden"


class NotFound(ApiError):
    status = 404
    type = "NotFound"


class MethodNotAllowed(ApiError):
    status = 405
    type = "MethodNotAllowed"


class PayloadTooLarge(ApiError):
    status = 413
    type = "PayloadTooLarge"


class TooManyRequests(ApiError):
    status = 429
    type = "TooManyRequests"


class ScriptedServerError(ApiError):
    """A 500 the notebook's scripted behaviour asked for (`serverErrors`)."""

    status = 500
    type = "InternalServerError"


class ScriptedRateLimit(TooManyRequests):
    """A 429 the notebook's scripted behaviour asked for (`rateLimited`), with `Retry-After`
    (whole seconds, `retryAfterSeconds` rounded up)."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.headers["Retry-After"] = str(retry_after)
