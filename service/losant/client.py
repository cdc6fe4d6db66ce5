"""The Losant Notebooks API client: every notebook route of the Losant REST API, typed.

One `requests.Session` per client keeps connections alive; the transport policy (timeouts,
retries) lives in `LosantAdapter`. This module only knows the routes: their paths, queries,
bodies, which of them may be repeated, and how their answers map to models and errors.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, NoReturn, TypeVar
from urllib.parse import quote, urlsplit

import requests
from pydantic import BaseModel, ValidationError
from requests.auth import AuthBase

from service import __version__, defaults
from service.config import OBJECT_ID, Settings
from service.losant.errors import (
    MAY_OR_MAY_NOT,
    AmbiguousNotebook,
    InvalidResponse,
    LosantError,
    NotFound,
    OutcomeUnknown,
    Unavailable,
    clean,
    error_for_status,
    parse_retry_after,
)
from service.losant.models import (
    Execution,
    ExecutionQueued,
    JobEnqueued,
    MinuteCounts,
    Notebook,
    NotebookPage,
)
from service.losant.transport import LosantAdapter, RetryPolicy, nothing_sent

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)

# Sent with every call, as Losant's official clients do.
LINK_QUERY = {"_actions": "false", "_links": "true", "_embedded": "true"}
IPYNB_CONTENT_TYPE = "application/x-ipynb+json"
_GLOB_CHARACTERS = re.compile(r"[*?\[\]\\]")

Timestamp = int | float | datetime
# Told about every call once it is over: method, path, HTTP status (None without an answer),
# seconds taken (retries included). nbrelay's metrics plug in here.
Observer = Callable[[str, str, int | None, float], None]


def repeatable(method: str, path: str) -> bool:
    """Whether a request may be sent again after a failure, decided per route.

    GET routes read. PATCH sends the same body, so a second one leaves the same notebook.
    DELETE of a deleted notebook changes nothing (a repeat may answer 404 if the first one went
    through). cancelExecution only marks a run for cancellation, which is idempotent. Every other
    POST is not repeatable: execute would queue a second run, create would make a second
    notebook, upload and requestInputDataExport would do their work twice.
    """
    if method in ("GET", "PATCH", "DELETE"):
        return True
    return method == "POST" and path.endswith("/cancelExecution")


class _BearerAuth(AuthBase):
    """Adds the token to each request, so it never sits in the session's default headers and
    never shows in a repr."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "_BearerAuth([redacted])"


class LosantClient:
    """A client of the notebook routes of one Losant API (or the sandbox).

    Timeouts and retry settings default to `service.defaults`. Requests that are safe to repeat
    are retried on connection errors, timeouts, 429, 502, 503 and 504 with exponential backoff
    and full jitter, honouring `Retry-After`; the others are sent exactly once (see `repeatable`).
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        connect_timeout: float = defaults.LOSANT_CONNECT_TIMEOUT,
        read_timeout: float = defaults.LOSANT_READ_TIMEOUT,
        max_retries: int = defaults.LOSANT_MAX_RETRIES,
        backoff_base: float = defaults.LOSANT_BACKOFF_BASE,
        backoff_max: float = defaults.LOSANT_BACKOFF_MAX,
        retry_deadline: float = defaults.LOSANT_RETRY_DEADLINE,
        accept_version: str = defaults.LOSANT_ACCEPT_VERSION,
        pool_size: int = defaults.LOSANT_POOL_SIZE,
        observer: Observer | None = None,
    ) -> None:
        if not token:
            raise ValueError("a Losant API token is required")
        self.base_url = base_url.rstrip("/")
        self.read_timeout = read_timeout
        # Losant's clock less ours, in seconds, from the `Date` of its latest answer (whole
        # seconds, so within a second of the truth); None until an answer had one.
        self.clock_offset: float | None = None
        self._token = token
        self._observer = observer
        self._session = requests.Session()
        self._session.auth = _BearerAuth(token)
        self._session.headers.update(
            {
                "Accept": "application/json",
                "Accept-Version": accept_version,
                "User-Agent": f"nbrelay/{__version__}",
            }
        )
        adapter = LosantAdapter(
            RetryPolicy(max_retries, backoff_base, backoff_max, retry_deadline),
            timeout=(connect_timeout, read_timeout),
            repeatable=repeatable,
            pool_size=pool_size,
        )
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)

    @classmethod
    def from_settings(
        cls, settings: Settings, *, observer: Observer | None = None, **policy: Any
    ) -> LosantClient:
        """A client for the configured API; ConfigError when LOSANT_API_TOKEN is not set.
        `policy`: timeouts and retries other than the defaults (`read_timeout=`...)."""
        token = settings.require("LOSANT_API_TOKEN").losant_api_token or ""
        return cls(settings.losant_api_url, token, observer=observer, **policy)

    def __repr__(self) -> str:
        return f"LosantClient(base_url={self.base_url!r})"

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> LosantClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # notebooks

    def list_notebooks(
        self,
        application_id: str,
        *,
        sort_field: str = "name",
        sort_direction: str = "asc",
        page: int = 0,
        per_page: int = defaults.LOSANT_PAGE_SIZE,
        filter_field: str | None = None,
        filter: str | None = None,  # noqa: A002 - Losant's name for the query parameter
    ) -> NotebookPage:
        """One page of an application's notebooks. `filter` is a glob on `filter_field` (name)."""
        params: dict[str, Any] = {
            "sortField": sort_field,
            "sortDirection": sort_direction,
            "page": page,
            "perPage": per_page,
        }
        if filter is not None:
            params["filterField"] = filter_field or "name"
            params["filter"] = filter
        elif filter_field is not None:
            params["filterField"] = filter_field
        data = self._call("GET", _notebooks(application_id), params=params)
        return self._parse(NotebookPage, data, "GET", _notebooks(application_id))

    def iter_notebooks(
        self,
        application_id: str,
        *,
        sort_field: str = "name",
        sort_direction: str = "asc",
        filter_field: str | None = None,
        filter: str | None = None,  # noqa: A002 - Losant's name for the query parameter
        per_page: int = defaults.LOSANT_PAGE_SIZE,
    ) -> Iterator[Notebook]:
        """Every notebook of the list, page after page. A notebook that moves between pages while
        paging (a rename) is yielded once."""
        seen: set[str] = set()
        page = received = 0
        while True:
            result = self.list_notebooks(
                application_id,
                sort_field=sort_field,
                sort_direction=sort_direction,
                page=page,
                per_page=per_page,
                filter_field=filter_field,
                filter=filter,
            )
            for notebook in result.items:
                if notebook.id not in seen:
                    seen.add(notebook.id)
                    yield notebook
            page += 1
            received += len(result.items)
            if not result.items or len(result.items) < (result.per_page or per_page):
                return
            if result.total_count is not None and received >= result.total_count:
                return

    def find_notebook(self, application_id: str, id_or_name: str) -> Notebook:
        """The notebook with this id, else the one with exactly this name.

        Names are resolved through the list route with a name filter (a glob, so the name's own
        glob characters are widened to `*` and matches are compared exactly). NotFound when no
        notebook matches, AmbiguousNotebook when several share the name.
        """
        if OBJECT_ID.fullmatch(id_or_name):
            try:
                return self.get_notebook(application_id, id_or_name)
            except NotFound:
                pass  # a notebook may be named like an id
        pattern = _GLOB_CHARACTERS.sub("*", id_or_name)
        matches = [
            notebook
            for notebook in self.iter_notebooks(application_id, filter_field="name", filter=pattern)
            if notebook.name == id_or_name
        ]
        if not matches:
            raise NotFound(
                f"no notebook with id or name {id_or_name!r} in application {application_id}",
                type="NotFound",
            )
        if len(matches) > 1:
            ids = ", ".join(notebook.id for notebook in matches)
            raise AmbiguousNotebook(
                f"{len(matches)} notebooks are named {id_or_name!r} ({ids}); use an id instead",
                type="Ambiguous",
            )
        return matches[0]

    def create_notebook(self, application_id: str, body: Mapping[str, Any]) -> Notebook:
        """Create a notebook (`notebookPost`: name, description, imageVersion, inputs, outputs).
        Sent once: a repeat would create a second notebook."""
        path = _notebooks(application_id)
        return self._parse(Notebook, self._call("POST", path, json=dict(body)), "POST", path)

    def get_notebook(self, application_id: str, notebook_id: str) -> Notebook:
        path = _notebook(application_id, notebook_id)
        return self._parse(Notebook, self._call("GET", path), "GET", path)

    def patch_notebook(
        self, application_id: str, notebook_id: str, changes: Mapping[str, Any]
    ) -> Notebook:
        """Change a notebook's fields (`notebookPatch`); retried, as the same patch twice is one."""
        path = _notebook(application_id, notebook_id)
        return self._parse(Notebook, self._call("PATCH", path, json=dict(changes)), "PATCH", path)

    def delete_notebook(self, application_id: str, notebook_id: str) -> None:
        self._call("DELETE", _notebook(application_id, notebook_id))

    def upload(
        self, application_id: str, notebook_id: str, filename: str, content: bytes
    ) -> Notebook:
        """Replace the notebook's .ipynb (multipart field `jupyterFile`). Sent once."""
        path = _notebook(application_id, notebook_id, "upload")
        files = {"jupyterFile": (filename, content, IPYNB_CONTENT_TYPE)}
        return self._parse(Notebook, self._call("POST", path, files=files), "POST", path)

    # executions

    def execute(
        self,
        application_id: str,
        notebook_id: str,
        *,
        relative_to: Timestamp | str | None = None,
        template_context: Mapping[str, Any] | str | None = None,
        email: str | None = None,
        callback_url: str | None = None,
    ) -> str:
        """Queue a run and return its executionId. NEVER repeated automatically: a second send
        would queue a second run. When the outcome is unknown (timeout or reset after sending,
        5xx) it raises OutcomeUnknown; then look for the run in `logs` before trying again."""
        path = _notebook(application_id, notebook_id, "execute")
        body = _run_options(relative_to, template_context, email, callback_url)
        data = self._call("POST", path, json=body)
        return self._parse(ExecutionQueued, data, "POST", path).execution_id

    def cancel_execution(self, application_id: str, notebook_id: str, execution_id: str) -> None:
        """Mark a run for cancellation; retried, as marking it twice is the same."""
        path = _notebook(application_id, notebook_id, "cancelExecution")
        self._call("POST", path, params={"executionId": execution_id})

    def logs(
        self,
        application_id: str,
        notebook_id: str,
        *,
        limit: int | None = None,
        since: Timestamp | None = None,
    ) -> list[Execution]:
        """The notebook's executions, newest first. Losant returns 1 when `limit` is not given;
        `since` (ms since epoch, or a datetime) keeps runs "since" it: Losant does not say which
        time of a run it compares (queued, started or ended; see `service.events.sync`)."""
        path = _notebook(application_id, notebook_id, "logs")
        params: dict[str, Any] = {}
        if limit is not None:
            params["limit"] = limit
        if since is not None:
            params["since"] = epoch_ms(since)
        data = self._call("GET", path, params=params)
        if not isinstance(data, list):
            raise InvalidResponse("expected a list of executions", request=f"GET {path}")
        executions = []
        for entry in data:
            execution = self._parse(Execution, entry, "GET", path)
            execution._source = entry  # kept as given, for whoever stores it (`as_given`)
            executions.append(execution)
        return executions

    def notebook_minute_counts(
        self,
        application_id: str,
        notebook_id: str,
        *,
        start: Timestamp | None = None,
        end: Timestamp | None = None,
    ) -> MinuteCounts:
        path = _notebook(application_id, notebook_id, "notebookMinuteCounts")
        params = {
            name: epoch_ms(value)
            for name, value in (("start", start), ("end", end))
            if value is not None
        }
        return self._parse(MinuteCounts, self._call("GET", path, params=params), "GET", path)

    def request_input_data_export(
        self,
        application_id: str,
        notebook_id: str,
        *,
        email: str | None = None,
        relative_to: Timestamp | str | None = None,
        template_context: Mapping[str, Any] | str | None = None,
        callback_url: str | None = None,
    ) -> JobEnqueued:
        """Ask Losant to export the notebook's input data (a job; at most one per 15 minutes).
        Sent once."""
        path = _notebook(application_id, notebook_id, "requestInputDataExport")
        body = _run_options(relative_to, template_context, email, callback_url)
        return self._parse(JobEnqueued, self._call("POST", path, json=body), "POST", path)

    # the server

    def server_date(self, application_id: str) -> tuple[datetime | None, float]:
        """Losant's clock: the `Date` header of a light read (one page of one notebook of the
        application), whatever its status, with our own time halfway through the request (s
        since epoch). The header is None when absent or unreadable; Unavailable without an
        answer."""
        path = _notebooks(application_id)
        params: dict[str, Any] = {**LINK_QUERY, "perPage": 1}
        sent = time.time()
        try:
            response = self._session.get(self.base_url + path, params=params)
        except requests.RequestException as exc:
            raise self._failure(exc, "GET", path) from exc
        return _date(response), (sent + time.time()) / 2

    # plumbing

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        files: Mapping[str, Any] | None = None,
    ) -> Any:
        """Send one request through the session and return the parsed JSON of a 2xx answer, or
        raise the LosantError that says what happened."""
        request = f"{method} {path}"
        started, sent = time.monotonic(), time.time()
        try:
            response = self._session.request(
                method,
                self.base_url + path,
                params={**LINK_QUERY, **(params or {})},
                json=json,
                files=files,
            )
        except requests.RequestException as exc:
            self._observe(method, path, None, started)
            raise self._failure(exc, method, path) from exc
        self._observe(method, path, response.status_code, started)
        date = _date(response)
        if date is not None:
            self.clock_offset = date.timestamp() - (sent + time.time()) / 2
        log.debug(
            "Losant %s answered %d in %.0f ms",
            request,
            response.status_code,
            (time.monotonic() - started) * 1000,
        )
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code >= 400:
            raise error_for_status(
                response.status_code,
                body,
                request=request,
                repeatable=repeatable(method, path),
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
                redact=self._token,
            )
        if body is None and response.content:
            self._invalid("the answer is not JSON", method, path)
        return body

    def _observe(self, method: str, path: str, status: int | None, started: float) -> None:
        if self._observer is not None:
            self._observer(method, path, status, time.monotonic() - started)

    def _failure(self, exc: requests.RequestException, method: str, path: str) -> LosantError:
        """The LosantError for a request that got no answer."""
        request = f"{method} {path}"
        if nothing_sent(exc):
            what = (
                "could not connect within the connect timeout"
                if isinstance(exc, requests.ConnectTimeout)
                else f"could not connect to {urlsplit(self.base_url).hostname}"
            )
            return Unavailable(f"{what}; nothing was sent", request=request)
        if isinstance(exc, requests.ReadTimeout):
            what = f"no answer within {self.read_timeout:g} s"
        elif isinstance(exc, (requests.ConnectionError, requests.exceptions.ChunkedEncodingError)):
            what = "the connection broke before a full answer came"
        else:
            what = clean(f"{type(exc).__name__}: {exc}", self._token)
        if repeatable(method, path):
            return Unavailable(what, request=request)
        return OutcomeUnknown(f"{what}; {MAY_OR_MAY_NOT}", request=request)

    def _parse(self, model: type[M], data: Any, method: str, path: str) -> M:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
                for e in exc.errors()[:3]
            )
            self._invalid(f"unexpected answer ({problems})", method, path)

    def _invalid(self, what: str, method: str, path: str) -> NoReturn:
        """Raise for a 2xx answer of the wrong shape: the request went through, so for a
        non-idempotent one its result (e.g. the executionId) is lost, which is OutcomeUnknown."""
        request = f"{method} {path}"
        if repeatable(method, path):
            raise InvalidResponse(clean(what, self._token), request=request)
        raise OutcomeUnknown(clean(f"{what}; {MAY_OR_MAY_NOT}", self._token), request=request)


def epoch_ms(value: Timestamp) -> int:
    """Milliseconds since the epoch, as Losant's queries want; a naive datetime counts as UTC."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return int(value.timestamp() * 1000)
    return int(value)


def _run_options(
    relative_to: Timestamp | str | None,
    template_context: Mapping[str, Any] | str | None,
    email: str | None,
    callback_url: str | None,
) -> dict[str, Any]:
    """The body shared by execute and requestInputDataExport; Losant wants templateContext as a
    JSON string, so a mapping is serialised here."""
    body: dict[str, Any] = {}
    if relative_to is not None:
        body["relativeTo"] = relative_to if isinstance(relative_to, str) else epoch_ms(relative_to)
    if template_context is not None:
        body["templateContext"] = (
            template_context
            if isinstance(template_context, str)
            else json.dumps(template_context, separators=(",", ":"))
        )
    if email is not None:
        body["email"] = email
    if callback_url is not None:
        body["callbackUrl"] = callback_url
    return body


def _segment(value: str) -> str:
    return quote(value, safe="")


def _notebooks(application_id: str) -> str:
    return f"/applications/{_segment(application_id)}/notebooks"


def _notebook(application_id: str, notebook_id: str, action: str | None = None) -> str:
    path = f"{_notebooks(application_id)}/{_segment(notebook_id)}"
    return f"{path}/{action}" if action else path


def _date(response: requests.Response) -> datetime | None:
    """The `Date` header of an answer (UTC when it names no zone); None when absent or
    unreadable."""
    try:
        date = parsedate_to_datetime(response.headers.get("Date", ""))
    except (TypeError, ValueError):
        return None
    return date if date.tzinfo else date.replace(tzinfo=UTC)
