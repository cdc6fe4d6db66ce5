"""Where every hint ends: a callback, a relay request, a poll or the reconciler asks for a sync
of one notebook here.

`request_sync` records the hint and marks the notebook dirty in one transaction, then enqueues a
sync job only when none is queued or running for the notebook (see `service.events.sync_state`
for the coalescing). `accept` is what the web layer calls for an incoming request: everything that
must be durable before the request is acknowledged.
"""

from __future__ import annotations

import time

import redis as redis_lib

from service import metrics
from service.events.hints import Incoming
from service.events.store import ExecutionStore
from service.events.sync_state import SyncState
from service.queues import Queues


class Ingress:
    def __init__(
        self, redis: redis_lib.Redis, store: ExecutionStore, syncs: SyncState, queues: Queues
    ) -> None:
        self.redis = redis
        self.store = store
        self.syncs = syncs
        self.queues = queues

    def request_sync(
        self,
        application_id: str,
        notebook_id: str,
        reason: str,
        *,
        event: dict[str, str] | None = None,
        execution_id: str | None = None,
        now: float | None = None,
    ) -> str | None:
        """Ask for a sync of the notebook; returns the id of the job enqueued, None if it joined
        one already queued or running.

        With `event`, the raw event is appended to the event stream in the same transaction that
        marks the notebook dirty, so a hint is either recorded and marked, or neither. The job is
        enqueued after that transaction; were the process to die in between, the notebook is
        dirty with an active job id RQ does not know, and the reconciler's recovery enqueues it.
        """
        moment = time.time() if now is None else now
        with self.redis.pipeline() as pipe:
            if event is not None:
                self.store.append_event(pipe, event)
            if execution_id is not None:
                self.store.count_callback(pipe, execution_id, moment)
            self.syncs.mark_dirty(pipe, application_id, notebook_id, moment)
            job_id = pipe.execute()[-1]
        if job_id is None:
            metrics.SYNC_REQUESTS.labels(reason, "joined").inc()
            return None
        self.queues.enqueue_sync(application_id, notebook_id, job_id)
        metrics.SYNC_REQUESTS.labels(reason, "enqueued").inc()
        return job_id

    def accept(self, incoming: Incoming) -> str | None:
        """Record an incoming request's event, mark the notebook dirty and enqueue its sync."""
        now = time.time()
        return self.request_sync(
            incoming.application_id,
            incoming.notebook_id,
            incoming.source,
            event=incoming.event_fields(now),
            execution_id=incoming.hint.execution_id,
            now=now,
        )

    def resume_dead(self, application_id: str, notebook_id: str) -> str | None:
        """Start a fresh sync of a notebook whose sync became a dead letter."""
        self.syncs.clear_dead(application_id, notebook_id)
        return self.request_sync(application_id, notebook_id, "replay")
