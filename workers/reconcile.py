"""The reconciler: what `nbrelay scheduler` does every few seconds.

- Runs nbrelay started whose terminal status is not known yet are checked on a doubling
  schedule (first after `NBRELAY_RECONCILE_INTERVAL`, capped, and once at their deadline:
  `maxAllowedRunMinutes` plus slack). A check is a sync of the notebook, so a callback that never
  came costs only a delay. Runs past their deadline are marked overdue.
- Notebooks listed in `NBRELAY_WATCH` are synced every `NBRELAY_POLL_INTERVAL` seconds, which
  also records executions started elsewhere (Losant workflows, the UI, other clients).
- Dirty notebooks whose sync died with its worker (the lease expired, the job is gone or stuck
  in RQ's started registry) get a new sync job.
- Index and stream entries older than the retention period are trimmed.

Only one scheduler does this at a time (a leader key with a TTL), so extra replicas are spares.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid

from rq.job import JobStatus

from service import defaults, jobs, keys, metrics
from service.config import OBJECT_ID
from service.context import Context
from service.losant import LosantError
from service.syncstate import request_sync

log = logging.getLogger(__name__)

TRIM_INTERVAL = 300.0  # seconds between retention passes
RESOLVE_INTERVAL = 600.0  # seconds before a watched notebook's name is looked up again
_WAITING = {JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED}

# KEYS: 1 leader. ARGV: my id, ttl ms.
_LEAD = """
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""

# KEYS: 1 leader. ARGV: my id.
_RESIGN = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def check_pending(ctx: Context, now: float) -> int:
    """Sync the notebooks of started runs whose check is due; returns how many runs."""
    due = ctx.store.due_pending(now)
    notebooks: set[tuple[str, str]] = set()
    for application_id, notebook_id, execution_id in due:
        record = ctx.store.get(execution_id)
        if record is None or record.is_terminal:
            ctx.store.forget_pending(application_id, notebook_id, execution_id)
            continue
        queued = (record.queued_ms or now * 1000) / 1000
        minutes = (record.losant or {}).get("maxAllowedRunMinutes")
        if not isinstance(minutes, (int, float)):
            minutes = defaults.ASSUMED_MAX_RUN_MINUTES
        deadline = queued + minutes * 60 + defaults.OVERDUE_SLACK
        checks = int(record.meta.get("checks", 0))
        wait = min(ctx.settings.reconcile_interval * 2 ** (checks + 1), defaults.PENDING_CHECK_MAX)
        next_check = now + wait if now >= deadline else min(now + wait, deadline)
        overdue = now >= deadline and "overdue_at" not in record.meta
        ctx.store.reschedule_pending(
            application_id,
            notebook_id,
            execution_id,
            next_check=next_check,
            overdue_at=now if overdue else None,
        )
        if overdue:
            metrics.RECONCILER_ACTIONS.labels("overdue").inc()
            log.warning(
                "execution %s of notebook %s is past its deadline and still %s",
                execution_id,
                notebook_id,
                record.status or "unread",
                extra={"execution": execution_id, "notebook": notebook_id},
            )
        notebooks.add((application_id, notebook_id))
    for application_id, notebook_id in notebooks:
        request_sync(ctx, application_id, notebook_id, "reconcile", now=now)
    metrics.RECONCILER_ACTIONS.labels("check").inc(len(due))
    return len(due)


def recover(ctx: Context, now: float) -> int:
    """Start a new sync for dirty notebooks whose sync job died; returns how many."""
    recovered = 0
    lease = ctx.settings.sync_lease
    for application_id, notebook_id, _ in ctx.syncs.dirty():
        status = ctx.syncs.status(application_id, notebook_id)
        if status.leased or (status.active is None and status.dead):
            continue  # a sync is running, or the notebook waits in the dead letters
        if status.active is not None:
            job = jobs.fetch(ctx, status.active)
            age = now - (status.active_since or now)
            job_status = job.get_status() if job is not None else None
            if job_status in _WAITING:
                continue
            if job_status == JobStatus.STARTED and age < lease:
                continue  # between RQ handing it over and the sync taking its lease
            if job is None and age < lease:
                continue  # between marking the notebook and enqueueing the job
            if job_status == JobStatus.STARTED:
                job.delete()  # its worker is gone; RQ would otherwise retry it much later
        successor = ctx.syncs.take_over(application_id, notebook_id, status.active, now)
        if successor is None:
            continue
        jobs.enqueue_sync(ctx, application_id, notebook_id, successor)
        recovered += 1
        metrics.RECONCILER_ACTIONS.labels("recover").inc()
        log.warning(
            "restarted the sync of notebook %s (job %s did not finish)",
            notebook_id,
            status.active or "none",
            extra={"application": application_id, "notebook": notebook_id},
        )
    return recovered


class Scheduler:
    """The reconciler's loop state: leadership, watched notebooks and when things are due."""

    def __init__(self, ctx: Context, *, name: str | None = None) -> None:
        self.ctx = ctx
        self.name = name or f"scheduler-{uuid.uuid4().hex[:12]}"
        self.interval = min(ctx.settings.reconcile_interval, ctx.settings.poll_interval)
        self._lead = ctx.redis.register_script(_LEAD)
        self._resign = ctx.redis.register_script(_RESIGN)
        self._resolved: dict[str, tuple[str, float]] = {}
        self._next_poll: dict[str, float] = {}
        self._next_trim = 0.0

    def is_leader(self) -> bool:
        ttl_ms = int(self.interval * defaults.SCHEDULER_LEADER_TTL * 1000) + 1000
        return bool(self._lead(keys=[keys.scheduler_leader()], args=[self.name, ttl_ms]))

    def tick(self, now: float | None = None) -> bool:
        """One pass; False when another scheduler leads."""
        moment = time.time() if now is None else now
        if not self.is_leader():
            return False
        check_pending(self.ctx, moment)
        recover(self.ctx, moment)
        self.poll_watched(moment)
        self.ctx.followups.tick()
        if moment >= self._next_trim:
            self.ctx.store.trim(moment)
            self._next_trim = moment + TRIM_INTERVAL
        return True

    def poll_watched(self, now: float) -> int:
        """Sync the watched notebooks whose poll is due; returns how many."""
        application_id = self.ctx.settings.losant_application_id
        if not self.ctx.settings.watch or not application_id:
            return 0
        polled = 0
        for entry in self.ctx.settings.watch:
            if now < self._next_poll.get(entry, 0.0):
                continue
            notebook_id = self._resolve(application_id, entry, now)
            self._next_poll[entry] = now + self.ctx.settings.poll_interval
            if notebook_id is None:
                continue
            request_sync(self.ctx, application_id, notebook_id, "poll", now=now)
            metrics.RECONCILER_ACTIONS.labels("poll").inc()
            polled += 1
        return polled

    def _resolve(self, application_id: str, entry: str, now: float) -> str | None:
        """A watched entry's notebook id: ids as they are, names looked up now and then."""
        if OBJECT_ID.match(entry):
            return entry
        cached = self._resolved.get(entry)
        if cached is not None and now - cached[1] < RESOLVE_INTERVAL:
            return cached[0]
        try:
            notebook = self.ctx.losant.find_notebook(application_id, entry)
        except LosantError as exc:
            log.warning("cannot watch notebook %r: %s", entry, exc, extra={"watch": entry})
            return cached[0] if cached else None
        self.ctx.store.remember_notebook_name(application_id, notebook.id, notebook.name or entry)
        self._resolved[entry] = (notebook.id, now)
        return notebook.id

    def run(self, stop: threading.Event) -> None:
        """Tick every interval until `stop` is set. A failing pass is logged, not fatal."""
        log.info("scheduler %s started (every %.3gs)", self.name, self.interval)
        while True:
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - Redis or Losant down: try again next tick
                log.exception("reconciler pass failed")
            if stop.wait(self.interval):
                break
        self.resign()
        log.info("scheduler %s stopped", self.name)

    def resign(self) -> None:
        """Give up leadership, so a spare scheduler takes over without waiting for the TTL."""
        try:
            self._resign(keys=[keys.scheduler_leader()], args=[self.name])
        except Exception:  # noqa: BLE001 - shutting down anyway; the TTL ends the lead
            log.warning("could not resign as scheduler leader", exc_info=True)
