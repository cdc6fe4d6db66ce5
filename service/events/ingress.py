"""Where every hint ends: a callback, a relay request, a poll or the reconciler asks for a sync
of one notebook here.

`request_sync` marks the notebook dirty, then enqueues a sync job only when none is queued or
running for the notebook (see `service.events.sync_state` for the coalescing). `accept` is what
the web layer calls for an incoming request: it also records the hint (`ExecutionStore.
record_hint`) in the same script, one Redis round trip for everything that must be durable
before the request is acknowledged.

A notebook's hints are recorded in the event stream within a budget (a token bucket of
HINT_BURST, refilled at HINT_RATE per second). A hint beyond it is still acted on in full — the
notebook is marked dirty and the callback counted, which costs no memory that grows — only its
raw event is not kept, and the sender is told to slow down. Replaying one callback URL therefore
costs a bounded amount of Redis memory and still cannot keep a sync from happening.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

import redis as redis_lib

from service import metrics
from service.events.hints import Incoming
from service.events.store import RECORD_HINT, ExecutionStore
from service.events.sync_state import MARK_DIRTY, SyncState
from service.queues import Queues

# Records a hint and marks its notebook dirty: the two scripts as one, so that accepting a
# request is a single EVALSHA (no MULTI, no SCRIPT EXISTS). Each part sees its own KEYS and
# ARGV. KEYS: the hint's, then the marking's. ARGV: how many keys and args the hint's part has,
# then the hint's args, then the marking's.
_ACCEPT = f"""
local function record_hint(KEYS, ARGV)
{RECORD_HINT}
end
local function mark_dirty(KEYS, ARGV)
{MARK_DIRTY}
end
local nk, na = tonumber(ARGV[1]), tonumber(ARGV[2])
local k1, a1, k2, a2 = {{}}, {{}}, {{}}, {{}}
for i = 1, #KEYS do
  if i <= nk then k1[#k1 + 1] = KEYS[i] else k2[#k2 + 1] = KEYS[i] end
end
for i = 3, #ARGV do
  if i - 2 <= na then a1[#a1 + 1] = ARGV[i] else a2[#a2 + 1] = ARGV[i] end
end
local recorded = record_hint(k1, a1)
if recorded < 0 then return {{recorded, false}} end
return {{recorded, mark_dirty(k2, a2)}}
"""


@dataclass(frozen=True)
class Accepted:
    """What became of an incoming request. `duplicate`: its relay message was accepted before,
    so nothing was done.
    `retry_after`: seconds until its notebook's budget records hints
    again (None when this one was recorded)."""

    job_id: str | None
    duplicate: bool = False
    retry_after: int | None = None


class Ingress:
    def __init__(
        self, redis: redis_lib.Redis, store: ExecutionStore, syncs: SyncState, queues: Queues
    ) -> None:
        self.redis = redis
        self.store = store
        self.syncs = syncs
        self.queues = queues
        self._accept = redis.register_script(_ACCEPT)
        self._held = threading.local()

    def request_sync(
        self, application_id: str, notebook_id: str, reason: str, *, now: float | None = None
    ) -> str | None:
        """Ask for a sync of the notebook; returns the id of the job enqueued, None if it joined
        one already queued or running."""
        moment = time.time() if now is None else now
        with self.redis.pipeline() as pipe:
            self.syncs.mark_dirty(pipe, application_id, notebook_id, moment)
            (job_id,) = pipe.execute()
        return self._enqueue(application_id, notebook_id, reason, job_id)

    def accept(self, incoming: Incoming, *, message_id: str | None = None) -> Accepted:
        """Record an incoming request's hint, mark the notebook dirty and enqueue its sync.

        The hint is recorded and the notebook marked in one script, so a hint is either
        recorded and marked, or neither; a relay message's id (`message_id`) is remembered in
        the same step, so a request that failed here can be sent again and is not taken for a
        duplicate, while a repeat of an accepted one changes nothing. The job is enqueued after
        that; were the process to die in between, the notebook is dirty with an active job id
        RQ does not know, and the reconciler's recovery enqueues it.
        """
        now = time.time()
        hint_keys, hint_args = self.store.record_hint(
            incoming.application_id,
            incoming.notebook_id,
            incoming.event_fields(now),
            execution_id=incoming.hint.execution_id,
            message_id=message_id,
            now=now,
        )
        dirty_keys, dirty_args = self.syncs.dirty_marking(
            incoming.application_id, incoming.notebook_id, now, urgent=incoming.step is not None
        )
        script_keys = [*hint_keys, *dirty_keys]
        script_args = [len(hint_keys), len(hint_args), *hint_args, *dirty_args]
        try:
            recorded, job_id = self._accept(
                keys=script_keys, args=script_args, client=self._held_client()
            )
        except redis_lib.ConnectionError:
            # The kept connection died with its server (Redis restarted since this thread last
            # used it): once more over a new one. Should the first try have been applied after
            # all, the hint is recorded twice, which is what at least once allows.
            self._drop_held_client()
            recorded, job_id = self._accept(
                keys=script_keys, args=script_args, client=self._held_client()
            )
        if recorded < 0:
            return Accepted(None, duplicate=True)
        job_id = self._enqueue(
            incoming.application_id, incoming.notebook_id, incoming.source, job_id
        )
        return Accepted(job_id, retry_after=math.ceil(recorded / 1000) if recorded else None)

    def _held_client(self) -> redis_lib.Redis:
        """This thread's client over a connection of the shared pool that it keeps. `accept`
        runs on every callback: a kept connection spares each one the pool's checkout (a lock,
        a poll of the socket for stray data, a return): under gunicorn's threads, requests
        making one round trip each through the pool ran at three quarters of the rate of the
        same requests on kept connections. The connection goes back to the pool with its
        thread."""
        client = getattr(self._held, "client", None)
        if client is None:
            client = redis_lib.Redis(
                connection_pool=self.redis.connection_pool, single_connection_client=True
            )
            self._held.client = client
        return client

    def _drop_held_client(self) -> None:
        client = getattr(self._held, "client", None)
        if client is not None:
            self._held.client = None
            if client.connection is not None:
                client.connection.disconnect()
            client.close()

    def _enqueue(
        self, application_id: str, notebook_id: str, reason: str, job_id: str | None
    ) -> str | None:
        if job_id is None:
            metrics.SYNC_REQUESTS.labels(reason, "joined").inc()
            return None
        self.queues.enqueue_sync(application_id, notebook_id, job_id)
        metrics.SYNC_REQUESTS.labels(reason, "enqueued").inc()
        return job_id

    def resume_dead(self, application_id: str, notebook_id: str) -> str | None:
        """Start a fresh sync of a notebook whose sync became a dead letter."""
        self.syncs.clear_dead(application_id, notebook_id)
        return self.request_sync(application_id, notebook_id, "replay")
