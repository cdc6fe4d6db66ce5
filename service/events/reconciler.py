"""The reconciler: what the leading `nbrelay scheduler` does to the event side every pass.

- Runs nbrelay started whose terminal status is not known yet are checked on a doubling
  schedule (first after `NBRELAY_RECONCILE_INTERVAL`, capped, and once at their deadline:
  `maxAllowedRunMinutes` plus slack). A check is a sync of the notebook, so a callback that never
  came costs only a delay. Runs past their deadline are marked overdue.
- Watched notebooks are polled (synced), which records executions started elsewhere (Losant
  workflows, the UI, other clients): those the pipeline file in force names in rules and
  pipeline steps (`watched`), and those listed in `NBRELAY_WATCH`. A notebook is busy while one
  of its newest runs is in flight (queued, running, or started by nbrelay and not read yet, until
  its deadline) or ended less than `NBRELAY_POLL_BUSY_WINDOW` ago: it is then polled every
  `NBRELAY_POLL_BUSY_INTERVAL` seconds, else every `NBRELAY_POLL_INTERVAL`. A notebook whose
  read was asked for within the interval for any reason (a callback, a check), or that waits
  for a sync, is not polled.
- Dirty notebooks whose sync died with its worker (the lease expired, the job is gone or stuck
  in RQ's started registry) get a new sync job.
- Index and stream entries older than the retention period are trimmed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from rq.job import JobStatus

from service import defaults, metrics
from service.config import OBJECT_ID, Settings
from service.events.ingress import Ingress
from service.events.starter import allowed_run_seconds
from service.events.store import ExecutionStore
from service.events.sync_state import SyncState
from service.losant import LosantClient, LosantError
from service.queues import Queues
from service.times import parse_time_ms

log = logging.getLogger(__name__)

_WAITING = {JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED}


class Reconciler:
    def __init__(
        self,
        settings: Settings,
        store: ExecutionStore,
        syncs: SyncState,
        queues: Queues,
        ingress: Ingress,
        losant: Callable[[], LosantClient],
        watched: Callable[[], Iterable[str]] = tuple,
    ) -> None:
        """`watched` gives the notebooks to poll besides `NBRELAY_WATCH` (ids or names): those
        the pipeline file in force names."""
        self.settings = settings
        self.store = store
        self.syncs = syncs
        self.queues = queues
        self.ingress = ingress
        self.losant = losant
        self.watched = watched
        self._resolved: dict[str, tuple[str | None, float]] = {}
        self._next_trim = 0.0

    def tick(self, now: float) -> None:
        """One pass: check started runs, recover dead syncs, poll watched notebooks, trim."""
        self.check_pending(now)
        self.recover(now)
        self.poll_watched(now)
        if now >= self._next_trim:
            self.store.trim(now)
            self._next_trim = now + defaults.TRIM_INTERVAL

    def check_pending(self, now: float) -> int:
        """Sync the notebooks of started runs whose check is due; returns how many runs."""
        due = self.store.due_pending(now)
        notebooks: set[tuple[str, str]] = set()
        for application_id, notebook_id, execution_id in due:
            record = self.store.get(execution_id)
            if record is None or record.is_terminal:
                self.store.forget_pending(application_id, notebook_id, execution_id)
                continue
            queued = (record.queued_ms or now * 1000) / 1000
            deadline = queued + allowed_run_seconds(record)
            checks = int(record.meta.get("checks", 0))
            wait = min(
                self.settings.reconcile_interval * 2 ** (checks + 1), defaults.PENDING_CHECK_MAX
            )
            next_check = now + wait if now >= deadline else min(now + wait, deadline)
            overdue = now >= deadline and "overdue_at" not in record.meta
            self.store.reschedule_pending(
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
            self.ingress.request_sync(application_id, notebook_id, "reconcile", now=now)
        metrics.RECONCILER_ACTIONS.labels("check").inc(len(due))
        return len(due)

    def recover(self, now: float) -> int:
        """Start a new sync for dirty notebooks whose sync job died; returns how many."""
        recovered = 0
        lease = self.settings.sync_lease
        for application_id, notebook_id, _ in self.syncs.dirty():
            status = self.syncs.status(application_id, notebook_id)
            if status.leased or (status.active is None and status.dead):
                continue  # a sync is running, or the notebook waits in the dead letters
            if status.active is not None:
                job = self.queues.fetch(status.active)
                age = now - (status.active_since or now)
                job_status = job.get_status() if job is not None else None
                # queued, yet on no queue: its worker died between taking it and starting it
                lost = (
                    job is not None
                    and job_status == JobStatus.QUEUED
                    and age >= lease
                    and not self.queues.holds(job)
                )
                if job_status in _WAITING and not lost:
                    continue
                if job_status == JobStatus.STARTED and age < lease:
                    continue  # between RQ handing it over and the sync taking its lease
                if job is None and age < lease:
                    continue  # between marking the notebook and enqueueing the job
                if job is not None and (lost or job_status == JobStatus.STARTED):
                    job.delete()  # its worker is gone; RQ would otherwise retry it much later
            successor = self.syncs.take_over(application_id, notebook_id, status.active, now)
            if successor is None:
                continue
            self.queues.enqueue_sync(application_id, notebook_id, successor)
            recovered += 1
            metrics.RECONCILER_ACTIONS.labels("recover").inc()
            log.warning(
                "restarted the sync of notebook %s (job %s did not finish)",
                notebook_id,
                status.active or "none",
                extra={"application": application_id, "notebook": notebook_id},
            )
        return recovered

    def poll_watched(self, now: float) -> int:
        """Sync the watched notebooks whose poll is due; returns how many."""
        application_id = self.settings.losant_application_id
        if not application_id:
            return 0
        entries = dict.fromkeys([*self.settings.watch, *self.watched()])
        notebooks = dict.fromkeys(
            notebook_id
            for entry in entries
            if (notebook_id := self._resolve(application_id, entry, now)) is not None
        )
        polled = 0
        for notebook_id in notebooks:
            if not self._poll_due(application_id, notebook_id, now):
                continue
            self.ingress.request_sync(application_id, notebook_id, "poll", now=now)
            metrics.RECONCILER_ACTIONS.labels("poll").inc()
            polled += 1
        return polled

    def _poll_due(self, application_id: str, notebook_id: str, now: float) -> bool:
        """Whether a watched notebook should be read now: its last read was asked for (by any
        hint: a poll, a callback, a check) an idle interval ago, or a busy interval ago and it
        is busy; never while a sync waits."""
        status = self.syncs.status(application_id, notebook_id)
        if status.dirty_since is not None:
            return False  # a sync is queued or running (or waits in the dead letters)
        idle = self.settings.poll_interval
        busy = min(self.settings.poll_busy_interval, idle)
        quiet = now - (status.hinted_at or 0.0)
        if quiet >= idle:
            return True
        return quiet >= busy and self._busy(application_id, notebook_id, now)

    def _busy(self, application_id: str, notebook_id: str, now: float) -> bool:
        """Whether one of the notebook's newest runs is in flight (until its deadline) or ended
        within the busy window."""
        for record in self.store.newest(application_id, notebook_id, defaults.POLL_ACTIVITY_RUNS):
            if record.is_terminal:
                ended = parse_time_ms(record.meta.get("terminal_at"))
                if ended is not None and now - ended / 1000 < self.settings.poll_busy_window:
                    return True
            elif now < (record.queued_ms or 0) / 1000 + allowed_run_seconds(record):
                return True
        return False

    def _resolve(self, application_id: str, entry: str, now: float) -> str | None:
        """A watched entry's notebook id: ids as they are, names looked up now and then (a name
        not found is looked up again after an idle poll interval)."""
        if OBJECT_ID.fullmatch(entry):
            return entry
        cached = self._resolved.get(entry)
        if cached is not None:
            found, at = cached
            fresh = defaults.WATCH_RESOLVE_INTERVAL if found else self.settings.poll_interval
            if now - at < fresh:
                return found
        try:
            notebook = self.losant().find_notebook(application_id, entry)
        except LosantError as exc:
            log.warning("cannot watch notebook %r: %s", entry, exc, extra={"watch": entry})
            previous = cached[0] if cached else None
            self._resolved[entry] = (previous, now)
            return previous
        self.store.remember_notebook_name(application_id, notebook.id, notebook.name or entry)
        self._resolved[entry] = (notebook.id, now)
        return notebook.id
