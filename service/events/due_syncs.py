"""The thread in every worker that enqueues the syncs whose wait is over.

A sync that waits for more hints (see `service.events.sync_state`) holds no worker: it sits in
the `due` sorted set until enough hints came or its time is up. Every worker process looks there
every SYNC_DUE_INTERVAL; a sync is released by one of them only (a Lua step), so several workers
looking at once enqueue it once. Were a worker to die between releasing a sync and enqueueing it,
the notebook stays dirty with an active job RQ does not know, which the reconciler's recovery
restarts.
"""

from __future__ import annotations

import logging
import threading
import time

import redis as redis_lib

from service import defaults
from service.events.sync_state import SyncState
from service.queues import Queues

log = logging.getLogger(__name__)


class DueSyncs:
    """Releases due syncs from a daemon thread between `start()` and `stop()`."""

    def __init__(
        self, syncs: SyncState, queues: Queues, interval: float = defaults.SYNC_DUE_INTERVAL
    ) -> None:
        self.syncs = syncs
        self.queues = queues
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="due-syncs", daemon=True)
        self._failing = False

    def start(self) -> DueSyncs:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop looking, after one last look: a worker that stops (`--burst`) leaves no sync
        whose wait is over to the reconciler's recovery."""
        self._stop.set()
        self._thread.join()
        try:
            self.release(time.time())
        except redis_lib.RedisError as exc:
            log.warning("could not release waiting syncs: %s", exc)

    def release(self, now: float) -> int:
        """Enqueue every sync whose wait is over at `now`; how many."""
        released = self.syncs.release_due(now)
        for application_id, notebook_id, job_id in released:
            self.queues.enqueue_sync(application_id, notebook_id, job_id)
        return len(released)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.release(time.time())
            except redis_lib.RedisError as exc:
                if not self._failing:  # once per outage, not every interval
                    log.warning("could not release waiting syncs: %s", exc)
                self._failing = True
            else:
                self._failing = False
