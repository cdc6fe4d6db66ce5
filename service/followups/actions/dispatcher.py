"""Opening follow-up actions and performing them, each exactly once.

Whoever decides on an action *opens* it in the ledger under its deterministic key; an action due
now is handed to a worker at once (`enqueue`), one due later when the scheduler finds it due.
A worker *performs* it under a lease: the performer acts, and the outcome is recorded. Failures
are sorted here: permanent ones are recorded as failed, transient ones (Losant unavailable, an
unknown outcome, a network error) postpone the action with backoff, and an action that keeps
failing gives up after ACTION_MAX_ATTEMPTS. An execute deferred by the `/logs` cap
(`StartDeferred`) sent nothing to Losant: it is given back for later without counting an attempt.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from service import defaults, keys, metrics
from service.errors import NbrelayError, UsageProblem
from service.events.starter import StartDeferred
from service.followups.actions.ledger import (
    ActionNotFound,
    ActionRecord,
    ActionState,
    Lease,
    Ledger,
)
from service.followups.pipeline_file.templates import TemplateError
from service.losant import AmbiguousNotebook, BadRequest, LosantError, NotFound, OutcomeUnknown

log = logging.getLogger(__name__)


class ActionFailed(NbrelayError):
    """The action cannot be performed and trying again will not help."""


Handler = Callable[[Lease], dict[str, Any]]  # performs one kind of action; returns its outcome
# Hands an action to a worker: (kind, key, starts_run), `starts_run` for the first steps of a
# pipeline run just started (new work, which waits behind what finishes runs under way).
Enqueue = Callable[[str, str, bool], None]

PERMANENT = (ActionFailed, NotFound, BadRequest, AmbiguousNotebook, UsageProblem, TemplateError)
UNSET = {"description": "", "inputs": []}  # what an absent notebook field is set back to


@dataclass(frozen=True)
class Performed:
    """What one call of `perform` came to: `outcome` (done, failed, postponed, deferred, skipped,
    lost)
    and, when the action finished for good, its record with the result or the error."""

    outcome: str
    record: ActionRecord | None = None
    result: dict[str, Any] | None = None
    error: str | None = None

    @property
    def finished(self) -> bool:
        return self.outcome in ("done", "failed")


class ActionDispatcher:
    def __init__(
        self,
        ledger: Ledger,
        handlers: Mapping[str, Handler],
        enqueue: Enqueue,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`handlers` perform each kind of action (execute, retry, patch, notify);
        `enqueue(kind, key, starts_run)` hands an action to a worker."""
        self.ledger = ledger
        self.handlers = handlers
        self.enqueue = enqueue
        self.clock = clock

    def open(
        self,
        key: str,
        kind: str,
        spec: dict[str, Any],
        due_at: float | None = None,
        *,
        starts_run: bool = False,
    ) -> None:
        """Open the action `key` unless it was opened before; dispatch it when it is due now.
        `starts_run`: it executes a first step of a pipeline run just started (kept in its spec,
        so that it waits behind the runs under way whenever it is dispatched)."""
        if starts_run:
            spec = {**spec, "starts_run": True}
        if self.ledger.open(key, kind, spec, due_at=due_at) and (
            due_at is None or due_at <= self.clock()
        ):
            self.enqueue(kind, key, starts_run)

    def record_failure(self, key: str, kind: str, spec: dict[str, Any], error: str) -> None:
        """Keep an action that could not even be prepared (its template failed) as failed."""
        self.ledger.record_failure(key, kind, spec, error)

    def get(self, key: str) -> ActionRecord | None:
        return self.ledger.get(key)

    def recent(self, limit: int, kind: str | None = None) -> list[ActionRecord]:
        return self.ledger.recent(limit, kind)

    def dispatch_due(self) -> None:
        """Hand to workers the actions that are due (retries after their backoff) or whose
        worker died."""
        for key in self.ledger.dispatch_due():
            record = self.ledger.get(key)
            if record is not None:
                self.enqueue(record.kind, key, bool(record.spec.get("starts_run")))

    def undo_patch(self, key: str) -> str:
        """Open an action that sets back what the patch `key` changed; returns its key."""
        record = self.ledger.get(key)
        if record is None:
            raise ActionNotFound(f"no action {key}")
        if record.kind != "patch" or record.state is not ActionState.DONE or not record.outcome:
            raise UsageProblem(f"action {key} is not a patch that was applied")
        undo = keys.undo_action(key)
        # Losant cannot unset a field: one the notebook did not have is set back to empty.
        before = {
            field: UNSET.get(field) if value is None else value
            for field, value in record.outcome["before"].items()
            if value is not None or field in UNSET
        }
        self.open(undo, "patch", {"notebook": record.outcome["notebook_id"], "set": before})
        return undo

    def perform(self, key: str) -> Performed:
        """Perform the action `key` if it is due and nobody else holds it."""
        record = self.ledger.get(key)
        performed = self._perform(key)
        metrics.ACTIONS.labels(record.kind if record else "unknown", performed.outcome).inc()
        return performed

    def _perform(self, key: str) -> Performed:
        lease = self.ledger.acquire(key)
        if lease is None:
            return Performed("skipped")
        record = lease.record
        if lease.attempt > defaults.ACTION_MAX_ATTEMPTS:
            error = f"gave up after {lease.attempt - 1} attempts: {record.error}"
            self.ledger.fail(lease, error)
            return Performed("failed", record, error=error)
        try:
            result = self.handlers[record.kind](lease)
        except StartDeferred as exc:
            self.ledger.defer(lease, exc.retry_after, _message(exc))
            log.info(
                "action %s deferred for %gs: %s", key, exc.retry_after, _message(exc),
                extra={"action": key},
            )  # fmt: skip
            return Performed("deferred")
        except PERMANENT as exc:
            error = _message(exc)
            self.ledger.fail(lease, error)
            log.warning("action %s failed: %s", key, error, extra={"action": key})
            return Performed("failed", record, error=error)
        except (LosantError, OSError) as exc:
            delay = min(
                defaults.ACTION_RETRY_BASE * 2 ** (lease.attempt - 1), defaults.ACTION_RETRY_MAX
            )
            if isinstance(exc, OutcomeUnknown):
                delay = max(delay, defaults.ACTION_UNKNOWN_WAIT)
            self.ledger.postpone(lease, delay, _message(exc))
            log.warning(
                "action %s will be tried again in %gs: %s", key, delay, _message(exc),
                extra={"action": key},
            )  # fmt: skip
            return Performed("postponed")
        if self.ledger.complete(lease, result):
            return Performed("done", record, result=result)
        return Performed("lost")


def _message(exc: Exception) -> str:
    return " ".join(str(exc).split())[: defaults.ERROR_SUMMARY_LENGTH] or type(exc).__name__
