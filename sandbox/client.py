"""`SandboxClient`: the sandbox-only routes under `/_sandbox/`, from Python.

Losant's routes have clients already (`losant-rest`, `service.losant`); these routes exist only in
the sandbox, where tests, load runs and `nbrelay up` create applications and tokens and script
notebooks.
An answer other than 2xx raises the `ApiError` subclass of its status (`ValidationFailed`,
`Unauthorized`, `Forbidden`, `NotFound`, ...) with the sandbox's `type` and `message`; a sandbox
that cannot be reached, or does not answer in time, raises `Unavailable`.
"""

from __future__ import annotations

import uuid
from typing import Any

import requests

from sandbox import __version__, defaults
from sandbox.errors import (
    ApiError,
    Forbidden,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    TooManyRequests,
    Unauthorized,
    Unavailable,
    ValidationFailed,
)

ERRORS_BY_STATUS: dict[int, type[ApiError]] = {
    error.status: error
    for error in (
        ValidationFailed,
        Unauthorized,
        Forbidden,
        NotFound,
        MethodNotAllowed,
        PayloadTooLarge,
        TooManyRequests,
    )
}


class SandboxClient:
    """One session with one sandbox: its bearer token, kept-alive connections and timeouts."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        connect_timeout: float = defaults.CLIENT_CONNECT_TIMEOUT,
        read_timeout: float = defaults.CLIENT_READ_TIMEOUT,
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = (connect_timeout, read_timeout)
        self._http = requests.Session()
        self._http.headers["Authorization"] = f"Bearer {token}"
        self._http.headers["User-Agent"] = f"nbrelay-sandbox-client/{__version__}"

    def __repr__(self) -> str:
        return f"SandboxClient(url={self.url})"

    def health(self, timeout: float | None = None) -> dict[str, Any]:
        """`{"status": "ok"}` once the sandbox serves. `timeout` (seconds) stands in for the
        client's own, so a caller waiting for a sandbox to start can poll briskly."""
        return self._call("GET", "/health", timeout=timeout)

    def create_application(self, name: str | None = None, **settings: Any) -> str:
        """Create an application, or update the one whose `id` is given; returns its id.
        `settings`: `id`, `maxAllowedRunMinutes`, `parallelRuns`. Without a name, a unique one."""
        body = {"name": name or f"app-{uuid.uuid4().hex[:8]}", **settings}
        return self._call("POST", "/applications", json=body)["id"]

    def application(self, application_id: str) -> dict[str, Any]:
        """`{"id", "name", "maxAllowedRunMinutes", "parallelRuns"}`, the sandbox's defaults
        standing in for limits the application does not set."""
        return self._call("GET", f"/applications/{application_id}")

    def update_application(self, application_id: str, **settings: Any) -> dict[str, Any]:
        """Change `name`, `maxAllowedRunMinutes` or `parallelRuns`; returns the application."""
        return self._call("PATCH", f"/applications/{application_id}", json=settings)

    def add_token(self, token: str, scopes: list[str]) -> list[str]:
        """Let `token` call the API with Losant's `scopes` (`notebook.logs`, `all.Application`,
        ...), or change the scopes of a known token; returns its scopes."""
        return self._call("POST", "/tokens", json={"token": token, "scopes": scopes})["scopes"]

    def guesses(self) -> dict[str, Any]:
        """What the sandbox does where Losant documents nothing, by name (`logsSince`,
        `logsLimitCap`, `callbackBody`, ...; see `sandbox.guesses`)."""
        return self._call("GET", "/guesses")

    def set_guesses(self, **changes: Any) -> dict[str, Any]:
        """Switch some of the guesses for the whole sandbox; returns all of them."""
        return self._call("PATCH", "/guesses", json=changes)

    def behaviour(self, application_id: str, notebook_id: str) -> dict[str, Any]:
        return self._call("GET", _notebook_path(application_id, notebook_id, "behaviour"))

    def set_behaviour(
        self, application_id: str, notebook_id: str, **behaviour: Any
    ) -> dict[str, Any]:
        """Script the notebook: `status`, `durationSeconds`, `logsLatencySeconds`,
        `dropCallbacks`, `duplicateCallbacks`, `serverErrors`, `rateLimited`,
        `retryAfterSeconds`, `lostExecuteAnswers`. Returns the whole behaviour."""
        path = _notebook_path(application_id, notebook_id, "behaviour")
        return self._call("PUT", path, json=behaviour)

    def clear_behaviour(self, application_id: str, notebook_id: str) -> dict[str, Any]:
        """Back to real runs; returns the behaviour of a notebook that has none."""
        return self._call("DELETE", _notebook_path(application_id, notebook_id, "behaviour"))

    def stats(self, application_id: str, notebook_id: str) -> dict[str, Any]:
        """`{"requests": {action: n}, "callbacksSent", "callbacksFailed", "callbacksDropped",
        "executeAnswersLost", "patches": [{"body", "applied"}]}`."""
        return self._call("GET", _notebook_path(application_id, notebook_id, "stats"))

    def export_job(self, application_id: str, job_id: str) -> dict[str, Any]:
        """An input data export job (`requestInputDataExport`), with its `downloadUrl` once
        it has completed."""
        return self._call("GET", f"/applications/{application_id}/exports/{job_id}")

    def create_data_table(
        self, application_id: str, name: str, columns: list[str], **fields: Any
    ) -> dict[str, Any]:
        """Create a data table (or replace the one whose `id` is given) for `dataTable`
        outputs; returns it."""
        body = {"name": name, "columns": columns, **fields}
        return self._call("POST", f"/applications/{application_id}/data-tables", json=body)

    def data_table_rows(
        self, application_id: str, table_id: str, offset: int = 0
    ) -> dict[str, Any]:
        """`{"items", "count", "totalCount", "offset", "limit"}`: a page of the table's rows."""
        path = f"/applications/{application_id}/data-tables/{table_id}/rows?offset={offset}"
        return self._call("GET", path)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SandboxClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(
        self, method: str, path: str, *, json: Any = None, timeout: float | None = None
    ) -> Any:
        url = f"{self.url}/_sandbox{path}"
        try:
            response = self._http.request(method, url, json=json, timeout=timeout or self.timeout)
        except requests.RequestException as exc:
            raise Unavailable(f"{method} {url} failed: {exc}") from exc
        if not 200 <= response.status_code < 300:
            raise _error(response)
        return response.json()


def _error(response: requests.Response) -> ApiError:
    """The sandbox's `{"type", "message"}` as an exception; any other body as plain text."""
    try:
        body = response.json()
        error_type, message = str(body["type"]), str(body["message"])
    except (ValueError, KeyError, TypeError):
        error_type = (response.reason or "HTTPError").replace(" ", "")
        message = response.text.strip()[:500] or error_type
    error_class = ERRORS_BY_STATUS.get(response.status_code, ApiError)
    return error_class(message, response.status_code, error_type)


def _notebook_path(application_id: str, notebook_id: str, leaf: str) -> str:
    return f"/applications/{application_id}/notebooks/{notebook_id}/{leaf}"
