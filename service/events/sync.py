"""The sync: read a notebook's executions from Losant and store what Losant says.

`NotebookSync.run` is what every hint becomes (see `service.events.sync_state` for how hints
coalesce into one job per notebook). It pages `GET …/logs` from the notebook's cursor, upserts
every execution under the notebook's fencing token, hands each newly terminal execution to
`Transitions`, and reads again at once if SYNC_BATCH or more hints arrived meanwhile; when fewer
did, the next read waits (outside any worker) for more or for SYNC_SPACING to pass. Losant errors
propagate, so RQ retries the job with backoff; the notebook stays dirty until a sync succeeds.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from service import defaults, metrics
from service.events.logs_limit import LogsCaps
from service.events.records import TERMINAL_STATUSES
from service.events.store import ExecutionStore
from service.events.sync_state import (
    Busy,
    Claim,
    Deferred,
    LeaseKeeper,
    LeaseLost,
    SyncState,
)
from service.events.transitions import Transitions
from service.events.unseen import UnseenExecutions
from service.losant import LosantClient
from service.queues import Queues
from service.times import parse_time_ms

log = logging.getLogger(__name__)


class SyncBusy(Exception):
    """Another sync still holds the notebook; this job is retried later."""


@dataclass(frozen=True)
class Read:
    """One read of a notebook's executions. `short_of_cursor`: the last page was full at the
    largest `limit` Losant serves and did not reach back to the cursor."""

    records: list[dict]
    logs_calls: int
    cursor_ms: int | None
    short_of_cursor: bool = False


class NotebookSync:
    def __init__(
        self,
        losant: Callable[[], LosantClient],
        store: ExecutionStore,
        syncs: SyncState,
        transitions: Transitions,
        queues: Queues,
        caps: LogsCaps,
        unseen: UnseenExecutions,
        first_check_after: float,
    ) -> None:
        """`first_check_after`: seconds after which the reconciler first checks a run a sync saw
        in flight (see `ExecutionStore.upsert`)."""
        self.losant = losant
        self.store = store
        self.syncs = syncs
        self.transitions = transitions
        self.queues = queues
        self.caps = caps
        self.unseen = unseen
        self.first_check_after = first_check_after

    def run(
        self, application_id: str, notebook_id: str, *, job_id: str, final_attempt: bool = True
    ) -> str:
        """Sync one notebook as job `job_id`; `final_attempt` says whether a failure is the
        last. Returns the outcome (ok, deferred, handed-off, superseded, lease-lost)."""
        started = time.monotonic()
        claim = self.syncs.begin(application_id, notebook_id, job_id, time.time())
        if isinstance(claim, Busy):
            if claim.active == job_id:
                raise SyncBusy(f"notebook {notebook_id} is held by an earlier sync")
            return _done("superseded", application_id, notebook_id, started)
        try:
            outcome, stats = self._rounds(claim)
        except LeaseLost:
            log.warning(
                "sync of notebook %s lost its lease; a newer sync carries on",
                notebook_id,
                extra={"application": application_id, "notebook": notebook_id, "job": job_id},
            )
            return _done("lease-lost", application_id, notebook_id, started)
        except Exception as exc:
            self._record_failure(claim, exc, final_attempt)
            metrics.SYNCS.labels("error").inc()
            raise
        return _done(outcome, application_id, notebook_id, started, **stats)

    def _rounds(self, claim: Claim) -> tuple[str, dict[str, int]]:
        stats = {"rounds": 0, "logs_calls": 0, "executions": 0}
        with LeaseKeeper(self.syncs, claim) as keeper:
            while True:
                stats["rounds"] += 1
                read = self.read_executions(claim)
                if keeper.lost.is_set():
                    raise LeaseLost(claim.notebook_id)
                stats["logs_calls"] += read.logs_calls
                stats["executions"] += len(read.records)
                self.store.upsert(
                    claim.application_id,
                    claim.notebook_id,
                    read.records,
                    fence=claim.fence,
                    first_check_after=self.first_check_after,
                )
                if read.short_of_cursor and claim.cursor_ms is not None:
                    self._count_unseen(claim.application_id, claim.notebook_id, claim.cursor_ms)
                self.transitions.deliver(claim.application_id, claim.notebook_id)
                newer = self.syncs.finish_round(
                    claim, read.cursor_ms, time.time(), listed=len(read.records)
                )
                if newer is None:
                    return "ok", stats
                if isinstance(newer, Deferred):
                    return "deferred", stats
                if stats["rounds"] >= defaults.SYNC_MAX_ROUNDS:
                    successor = self.syncs.hand_off(claim, time.time())
                    if successor is not None:
                        self.queues.enqueue_sync(claim.application_id, claim.notebook_id, successor)
                    return "handed-off", stats
                claim = dataclasses.replace(
                    claim,
                    generation=newer,
                    cursor_ms=read.cursor_ms,
                    hints=newer - claim.generation,
                    listed=len(read.records),
                )

    def read_executions(self, claim: Claim) -> Read:
        """Every execution of the notebook queued since its cursor, newest first, as far as
        Losant's largest `limit` reaches.

        `/logs` has no offset: it returns the newest `limit` executions "since" a time. So
        `limit` grows until fewer come back than were asked for, or up to the cap
        (`service.events.logs_limit`). A 400 about `limit` reveals a cap; so does a page with
        fewer runs than asked that leaves out a run stored as terminal and queued since the
        cursor (`_misses_terminal`): unlike the run at the cursor, which under a `since` that
        compares start or end times is not listed while it is still queued or running, such a
        run is listed under every meaning.

        Losant does not say which time of an execution `since` is compared with: when it was
        queued (at or after, or strictly after), started or ended. The cursor is a queue time
        (`next_cursor`) less a margin (`since_margin`), and that is enough under each meaning:
        every execution starts and ends after it was queued, so one queued since the cursor is
        listed as soon as it is listed at all (strict "after" is covered by the margin); one not
        listed yet (not started, not ended) reaches that point later than this read, so after
        the cursor, which is never later than the newest execution seen. Runs nbrelay started
        stay pending until terminal, and keep `since` at or before their queue time meanwhile
        (a time of nbrelay's clock: the margin covers the clocks' difference). The margin also
        covers a run Losant lists up to SYNC_SKEW_MARGIN after a run queued later than it.
        """
        application_id = claim.application_id
        now_ms = int(time.time() * 1000)
        since = (
            claim.cursor_ms
            if claim.cursor_ms is not None
            else now_ms - defaults.SYNC_FIRST_LOOKBACK * 1000
        )
        oldest_pending = self.store.oldest_pending_ms(application_id, claim.notebook_id)
        if oldest_pending is not None:
            since = min(since, oldest_pending)
        floor = since
        client = self.losant()
        since -= int(since_margin(client.clock_offset) * 1000)
        ceiling = self.caps.get(application_id) or defaults.SYNC_MAX_LIMIT
        limit, calls = min(first_limit(claim), ceiling), 0
        while True:
            page = self.caps.read(
                client, application_id, claim.notebook_id, limit=limit, since=since
            )
            calls += page.calls
            if page.limit < limit:  # a 400 revealed the cap
                ceiling = limit = page.limit
            records = [execution.as_given for execution in page.executions]
            if len(records) < limit:
                if records and self._misses_terminal(claim, records, floor):
                    self.caps.remember(application_id, len(records), "short")
                    ceiling = len(records)
                break
            if limit >= ceiling:
                break
            limit = min(limit * defaults.SYNC_LIMIT_GROWTH, ceiling)
        short_of_cursor = _short_of(records, claim.cursor_ms) and len(records) >= ceiling
        return Read(records, calls, next_cursor(records, claim.cursor_ms), short_of_cursor)

    def _misses_terminal(self, claim: Claim, records: list[dict], floor: int) -> bool:
        """Whether `records` leave out a run stored as terminal and queued at or after `floor`:
        whatever time `since` compares, such a run is listed (it was queued, started and ended
        after `floor`), so a page without it was cut short."""
        listed = {str(r.get("id")) for r in records}
        known = self.store.terminal_ids_since(claim.application_id, claim.notebook_id, floor)
        return any(execution_id not in listed for execution_id in known)

    def _count_unseen(self, application_id: str, notebook_id: str, cursor_ms: int) -> None:
        """Record how many runs queued between the cursor and the oldest run read may not have
        been seen: Losant's count of runs finished since the cursor's day, less those stored."""
        counts = self.losant().notebook_minute_counts(
            application_id, notebook_id, start=cursor_ms, end=int(time.time() * 1000)
        )
        finished = sum(
            (day.completed or 0) + (day.canceled or 0) + (day.errored or 0) + (day.timeout or 0)
            for day in counts.counts
        )
        unseen = finished - self.store.terminal_count_since(application_id, notebook_id, cursor_ms)
        if unseen > 0:
            self.unseen.add(application_id, notebook_id, unseen, gap=cursor_ms)

    def _record_failure(self, claim: Claim, exc: Exception, final: bool) -> None:
        summary = f"{type(exc).__name__}: {exc}"[: defaults.ERROR_SUMMARY_LENGTH]
        log.warning(
            "sync of notebook %s failed%s: %s",
            claim.notebook_id,
            "" if not final else " for the last time; it is now a dead letter",
            summary,
            extra={
                "application": claim.application_id,
                "notebook": claim.notebook_id,
                "job": claim.job_id,
            },
        )
        try:
            self.syncs.fail(
                claim.application_id,
                claim.notebook_id,
                claim.job_id,
                fence=claim.fence,
                error=summary,
                final=final,
                now=time.time(),
            )
        except Exception:  # noqa: BLE001 - Redis may be what failed; the notebook stays dirty
            log.warning("could not record the failure of a sync", exc_info=True)


def since_margin(clock_offset: float | None) -> float:
    """Seconds read before the cursor: the difference seen between Losant's clock and ours (the
    `Date` of its answers) plus SYNC_SKEW_MARGIN, at most SYNC_SINCE_MARGIN, which is also what
    is read while no answer has told the difference yet."""
    if clock_offset is None:
        return defaults.SYNC_SINCE_MARGIN
    return min(defaults.SYNC_SINCE_MARGIN, abs(clock_offset) + defaults.SYNC_SKEW_MARGIN)


def first_limit(claim: Claim) -> int:
    """The `limit` of a read's first `/logs` request: room for what the previous read listed
    and one run per hint since, twice over, so that one request is almost always enough."""
    return max(defaults.SYNC_FIRST_LIMIT, 2 * (claim.listed + claim.hints))


def _short_of(records: list[dict], cursor_ms: int | None) -> bool:
    """Whether the oldest of `records` is newer than the cursor (the run there is missing)."""
    if cursor_ms is None or not records:
        return False
    oldest = parse_time_ms(records[-1].get("runQueuedAt"))
    return oldest is not None and oldest > cursor_ms


def next_cursor(records: list[dict], previous: int | None) -> int | None:
    """Where the next read may start: the oldest execution still running, else the newest one
    seen (it is read again, harmlessly), else where this read started."""
    queued = [(parse_time_ms(r.get("runQueuedAt")), r.get("status")) for r in records]
    running = [ms for ms, status in queued if ms is not None and status not in TERMINAL_STATUSES]
    if running:
        return min(running)
    seen = [ms for ms, _ in queued if ms is not None]
    return max(seen) if seen else previous


def _done(outcome: str, application_id: str, notebook_id: str, started: float, **stats: int) -> str:
    elapsed = time.monotonic() - started
    metrics.SYNCS.labels(outcome).inc()
    metrics.SYNC_DURATION.observe(elapsed)
    log.info(
        "sync of notebook %s: %s",
        notebook_id,
        outcome,
        extra={
            "event": "sync",
            "application": application_id,
            "notebook": notebook_id,
            "outcome": outcome,
            "seconds": round(elapsed, 3),
            **stats,
        },
    )
    return outcome
