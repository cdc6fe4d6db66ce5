"""Starting executions (`nbrelay run`, `POST /api/notebooks/<id>/executions`, pipeline steps and
rules) and following them to a terminal status.

A run is started with a signed callbackUrl, valid as long as the run may take plus a margin
(`callback_token_ttl`), and recorded (who, when, which context, the resulting
executionId) before its callback can arrive; the reconciler looks at it later in case the
callback never comes.

Losant's `/logs` shows one page of the newest runs, so once a cap on its `limit` is known
(`service.events.logs_limit`) a notebook may not have more runs nbrelay waits for than that cap:
a start beyond it is deferred (`StartDeferred`) rather than risking runs no sync can read. A
per-notebook lock holds from that check until the run is recorded, so two starts cannot both
take the last place.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from redis.exceptions import LockError, RedisError

from service import defaults, json_input, keys, metrics
from service.config import Settings
from service.errors import NbrelayError, UsageProblem
from service.events import tokens
from service.events.logs_limit import LogsCaps
from service.events.records import ExecutionRecord
from service.events.store import ExecutionStore
from service.losant import LosantClient, NotFound, OutcomeUnknown
from service.losant.models import Notebook
from service.marker import MARKER_KEY, Marker, with_marker

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Started:
    execution_id: str
    application_id: str
    notebook_id: str
    notebook_name: str
    requested_at: float

    def as_json(self) -> dict[str, Any]:
        return {
            "executionId": self.execution_id,
            "applicationId": self.application_id,
            "notebookId": self.notebook_id,
            "notebookName": self.notebook_name,
            "requestedAt": datetime.fromtimestamp(self.requested_at, UTC).isoformat(),
        }


def parse_user_context(raw: str | Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A user's context: a JSON object, without nbrelay's reserved key."""
    if raw is None:
        return None
    if isinstance(raw, str):
        try:
            value = json_input.loads(raw)
        except json_input.MalformedJson as exc:
            raise UsageProblem(f"the context is not valid JSON: {exc}") from None
    else:
        value = raw
    if not isinstance(value, dict):
        raise UsageProblem("the context must be a JSON object")
    if MARKER_KEY in value:
        raise UsageProblem(f"the context key {MARKER_KEY!r} is reserved for pipelines")
    return dict(value)


class StartDeferred(NbrelayError):
    """The notebook already has as many runs nbrelay waits for as one `/logs` page can show;
    the start may be tried again after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: float = defaults.START_DEFER_RETRY) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ExecutionStarter:
    """Starts executions in the configured Losant application and records them."""

    def __init__(
        self,
        settings: Settings,
        losant: Callable[[], LosantClient],
        store: ExecutionStore,
        caps: LogsCaps,
        request_sync: Callable[[str, str], object],
    ) -> None:
        """`losant` gives the client when it is first needed. `request_sync(application_id,
        notebook_id)` asks for a sync of a notebook whose `execute` lost its answer: whatever
        ran is then read from `/logs` and recorded, even when its callback never comes."""
        self.settings = settings
        self.losant = losant
        self.store = store
        self.caps = caps
        self.request_sync = request_sync
        self._found: _Remembered[Notebook] = _Remembered()  # by (application, id or name)
        self._newest: _Remembered[ExecutionRecord | None] = _Remembered()  # by notebook id

    def start(
        self,
        notebook: str,
        *,
        requested_by: str,
        context: Mapping[str, Any] | None = None,
        relative_to: int | str | None = None,
        marker: Marker | None = None,
    ) -> Started:
        """Ask Losant to run `notebook` (an id or a name) with a signed callbackUrl, and record it.
        `marker` is nbrelay's mark on the run (a pipeline step's run and step also go into the
        callback token).

        Losant's `execute` is not retried when its outcome is unknown: the LosantError says so,
        and a sync of the notebook is requested, which records the run if there is one.
        StartDeferred when the notebook has no room left under the `/logs` cap (nothing was
        sent to Losant).

        The notebook `notebook` names is looked up at Losant at most once per
        NOTEBOOK_LOOKUP_TTL, so a pipeline starting the same step again and again costs Losant
        only its `execute`. When that `execute` answers 404 (the notebook remembered was
        deleted, or renamed and its name taken since; nothing ran), it is looked up again and
        started once more.
        """
        settings = self.settings.require(
            "LOSANT_APPLICATION_ID", "NBRELAY_PUBLIC_URL", "NBRELAY_SECRET"
        )
        application_id = settings.losant_application_id or ""
        client = self.losant()
        template_context = with_marker(context, marker)
        encoded = json.dumps(template_context, separators=(",", ":")) if template_context else None
        if encoded is not None and len(encoded) > defaults.TEMPLATE_CONTEXT_MAX_LENGTH:
            raise UsageProblem(
                f"the context is longer than Losant's {defaults.TEMPLATE_CONTEXT_MAX_LENGTH} "
                "characters"
            )
        run = _Run(
            settings,
            requested_by,
            template_context,
            encoded,
            relative_to,
            marker if marker is not None and marker.is_step else None,
        )
        key = (application_id, notebook)
        remembered, fresh = self._found.get(key)
        if fresh and remembered is not None:
            try:
                return self._start(client, application_id, remembered, run)
            except NotFound:
                # 404: nothing ran. The notebook remembered was deleted, or renamed and another
                # took its name since: it is looked up again.
                self._found.forget(key)
        try:
            found = client.find_notebook(application_id, notebook)
            self._found.put(key, found)
            return self._start(client, application_id, found, run)
        except NotFound:
            self._found.forget(key)
            metrics.EXECUTIONS_STARTED.labels("error").inc()
            raise

    def _start(
        self, client: LosantClient, application_id: str, found: Notebook, run: _Run
    ) -> Started:
        """Start `run` of the notebook `found`: check its room, sign, execute, record."""
        newest = self._newest_read(application_id, found.id)
        step = run.step
        with self._room(application_id, found, newest):
            token = tokens.sign(
                run.settings.signing_secret,
                application_id,
                found.id,
                run=step.run if step else None,
                step=step.step if step else None,
                ttl=callback_token_ttl(newest),
            )
            requested_at = time.time()
            try:
                execution_id = client.execute(
                    application_id,
                    found.id,
                    relative_to=run.relative_to,
                    template_context=run.encoded_context,
                    callback_url=tokens.callback_url(run.settings.public_url or "", token),
                )
            except NotFound:
                raise  # counted by `start` once it is final
            except Exception as exc:
                metrics.EXECUTIONS_STARTED.labels("error").inc()
                if isinstance(exc, OutcomeUnknown):
                    self._look_for_lost_start(application_id, found.id)
                raise
            self.store.record_request(
                application_id=application_id,
                notebook_id=found.id,
                execution_id=execution_id,
                requested_by=run.requested_by,
                requested_at=requested_at,
                first_check_at=requested_at + run.settings.reconcile_interval,
                context=run.context or None,
                relative_to=run.relative_to,
                notebook_name=found.name,
            )
        metrics.EXECUTIONS_STARTED.labels("started").inc()
        return Started(execution_id, application_id, found.id, found.name or "", requested_at)

    def _look_for_lost_start(self, application_id: str, notebook_id: str) -> None:
        """Ask for a sync that records the run an `execute` whose answer was lost may have
        started; the caller still learns that the outcome is unknown, whatever happens here."""
        try:
            self.request_sync(application_id, notebook_id)
        except RedisError:
            log.warning(
                "could not ask for a sync of notebook %s after a start whose answer was lost",
                notebook_id,
                exc_info=True,
            )

    def _newest_read(self, application_id: str, notebook_id: str) -> ExecutionRecord | None:
        """The notebook's newest run read from Losant (among its CALLBACK_TOKEN_LOOKBACK newest
        stored), which carries how long its runs may take; looked up once per
        NOTEBOOK_LOOKUP_TTL, as that limit is the application's and seldom changes."""
        key = (application_id, notebook_id)
        newest, fresh = self._newest.get(key)
        if not fresh:
            recent = self.store.query(
                application_id=application_id,
                notebook_id=notebook_id,
                limit=defaults.CALLBACK_TOKEN_LOOKBACK,
            ).items
            newest = next((r for r in recent if r.losant), None)
            self._newest.put(key, newest)
        return newest

    @contextmanager
    def _room(
        self, application_id: str, notebook: Notebook, newest: ExecutionRecord | None
    ) -> Iterator[None]:
        """Hold the notebook's start lock while there is room for one more run under the known
        `/logs` cap of the application; StartDeferred when there is none. No cap known: no check.
        Runs requested longer ago than a run may take (`newest` carries the limit) are overdue
        and take no room."""
        cap = self.caps.get(application_id)
        if cap is None:
            yield
            return
        name = notebook.name or notebook.id
        lock = self.store.redis.lock(
            keys.start_lock(application_id, notebook.id),
            timeout=defaults.START_LOCK_TTL,
            blocking_timeout=defaults.START_LOCK_WAIT,
        )
        if not lock.acquire():
            metrics.EXECUTIONS_STARTED.labels("deferred").inc()
            raise StartDeferred(f"another start of notebook {name} is under way; try again shortly")
        try:
            since_ms = int((time.time() - allowed_run_seconds(newest)) * 1000)
            pending = self.store.pending_count_since(application_id, notebook.id, since_ms)
            if pending >= cap:
                metrics.EXECUTIONS_STARTED.labels("deferred").inc()
                raise StartDeferred(
                    f"notebook {name} already has {pending} runs nbrelay is waiting for, the "
                    f"most one /logs page can show ({cap}); try again shortly"
                )
            yield
        finally:
            try:
                lock.release()
            except LockError:
                pass  # held past START_LOCK_TTL: it expired, nothing to release


@dataclass(frozen=True)
class _Run:
    """What a start asks for, prepared once whichever notebook it turns out to be."""

    settings: Settings
    requested_by: str
    context: dict[str, Any] | None
    encoded_context: str | None
    relative_to: int | str | None
    step: Marker | None


class _Remembered(Generic[T]):
    """Values this process looked up, each used for NOTEBOOK_LOOKUP_TTL seconds; at most
    NOTEBOOK_LOOKUP_ENTRIES of them (all forgotten beyond)."""

    def __init__(self) -> None:
        self._values: dict[tuple[str, str], tuple[float, T]] = {}

    def get(self, key: tuple[str, str]) -> tuple[T | None, bool]:
        """The value and whether it is still fresh ((None, False) when unknown)."""
        entry = self._values.get(key)
        if entry is None:
            return None, False
        return entry[1], time.monotonic() - entry[0] < defaults.NOTEBOOK_LOOKUP_TTL

    def put(self, key: tuple[str, str], value: T) -> None:
        if len(self._values) >= defaults.NOTEBOOK_LOOKUP_ENTRIES:
            self._values.clear()
        self._values[key] = (time.monotonic(), value)

    def forget(self, key: tuple[str, str]) -> None:
        self._values.pop(key, None)


class WaitTimeout(NbrelayError):
    """The execution did not reach a terminal status in time."""


def wait_for_terminal(
    store: ExecutionStore,
    execution_id: str,
    *,
    timeout: float | None = None,
    on_look: Callable[[ExecutionRecord | None], None] | None = None,
) -> ExecutionRecord:
    """Follow an execution in the store until it is terminal.

    Without `timeout`, waits as long as Losant lets the run take (`maxAllowedRunMinutes`, once
    known) plus slack. `on_look` sees the stored record (None until there is one) after every
    look, the last one included.
    """
    started = time.monotonic()
    last_status: str | None = None
    while True:
        record = store.get(execution_id)
        if record is not None:
            last_status = record.status
        if on_look is not None:
            on_look(record)
        if record is not None and record.is_terminal:
            return record
        limit = timeout if timeout is not None else allowed_run_seconds(record)
        if time.monotonic() - started > limit:
            raise WaitTimeout(
                f"execution {execution_id} is still {last_status or 'not read from Losant'} "
                f"after {limit:g}s"
            )
        time.sleep(defaults.WAIT_POLL_INTERVAL)


def callback_token_ttl(record: ExecutionRecord | None) -> int:
    """Seconds the callback URL of a new run stays valid: as long as a run of its notebook may
    take (`allowed_run_seconds` of `record`, the notebook's newest run read from Losant, which
    carries the application's maxAllowedRunMinutes) plus CALLBACK_TOKEN_MARGIN. Without such a
    record, `defaults.CALLBACK_TOKEN_TTL`."""
    return math.ceil(allowed_run_seconds(record)) + defaults.CALLBACK_TOKEN_MARGIN


def allowed_run_seconds(record: ExecutionRecord | None, slack: float | None = None) -> float:
    """How long after it was queued a run may still end: its `maxAllowedRunMinutes` (assumed,
    until Losant's record is read) plus `slack` for the queue and the outputs (by default
    OVERDUE_SLACK)."""
    minutes = (record.losant or {}).get("maxAllowedRunMinutes") if record else None
    if not isinstance(minutes, (int, float)):
        minutes = defaults.ASSUMED_MAX_RUN_MINUTES
    return minutes * 60 + (defaults.OVERDUE_SLACK if slack is None else slack)
