"""Which notebooks need a sync, and which job syncs each of them: coalescing and fencing.

Every hint (a callback, a relay request, a poll, the reconciler) ends in `Ingress.request_sync()`
(`service.events.ingress`), which bumps the notebook's *wanted generation*, marks it dirty and,
only if no sync job is active for it, makes a new job id the active one. Hints that arrive while
a job is queued or running just bump the generation: the running job reads Losant again before
it lets go when the generation moved during its read, so a burst of callbacks costs one or two
`/logs` reads.

Reads of one notebook are paced without holding a worker. The first hint after a quiet spell
(SYNC_SPACING since the last read) has its job enqueued at once; a hint that comes sooner waits
in the `due` sorted set until SYNC_BATCH hints have gathered or the spacing has passed, and a
read that ends with fewer than SYNC_BATCH new hints leaves its successor waiting there too. Each
worker looks at `due` every SYNC_DUE_INTERVAL (`release_due`) and enqueues the jobs whose wait
is over. So a busy notebook costs at most one read per SYNC_BATCH hints, a quiet one's hint is
read within SYNC_SPACING, and workers only ever wait on Losant. The callback of a pipeline step
is urgent — the next step waits for the read — so it is read at once, and a read under way when
it comes reads again as soon as it ends.

A job that starts takes the notebook's lease: a key with a TTL holding a fencing token (a number
that grows with every lease). The store only accepts writes carrying the current token, so a
sync that stalled past its lease cannot overwrite the reads of the one that replaced it. A worker
that dies leaves the notebook dirty with an expired lease; the reconciler's `recover()` pass sees
that and starts a new job (RQ's own abandoned-job handling is neither fast nor reliable).

All state changes are Lua scripts: each is one atomic step in Redis.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import cast

import redis as redis_lib
from redis.client import Pipeline

from service import defaults, keys

log = logging.getLogger(__name__)

# KEYS: 1 state, 2 dirty, 3 notebooks, 4 due. ARGV: ref, now, ttl, job id prefix, spacing, batch,
# urgent ('1' for the callback of a pipeline step). Returns the id of a job to enqueue now, or
# false: a job is already queued or running, or the new job waits in `due` for more hints
# (`batch` since the last read) or for the spacing since that read to pass, whichever comes
# first. An urgent hint waits for neither, and makes a running read read again.
MARK_DIRTY = """
local wanted = redis.call('HINCRBY', KEYS[1], 'wanted', 1)
redis.call('HSET', KEYS[1], 'hinted_at', ARGV[2])
redis.call('ZADD', KEYS[2], 'NX', ARGV[2], ARGV[1])
local covered = tonumber(redis.call('HGET', KEYS[1], 'covered') or '0')
local enough = wanted - covered >= tonumber(ARGV[6]) or ARGV[7] == '1'
if ARGV[7] == '1' then redis.call('HSET', KEYS[1], 'urgent', wanted) end
local active = redis.call('HGET', KEYS[1], 'active')
if active then  -- a hint that joins: the keys' lifetimes were renewed when the job was made
  if enough and redis.call('HDEL', KEYS[1], 'deferred') == 1 then
    redis.call('ZREM', KEYS[4], ARGV[1])
    return active
  end
  return false
end
redis.call('ZADD', KEYS[3], math.floor(tonumber(ARGV[2]) * 1000), ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[3])
redis.call('EXPIRE', KEYS[3], ARGV[3])
local id = ARGV[4] .. redis.call('HINCRBY', KEYS[1], 'jobs', 1)
redis.call('HSET', KEYS[1], 'active', id, 'active_since', ARGV[2])
local due = tonumber(redis.call('HGET', KEYS[1], 'last_sync_at') or '0') + tonumber(ARGV[5])
if enough or tonumber(ARGV[2]) >= due then return id end
redis.call('HSET', KEYS[1], 'deferred', '1')
redis.call('ZADD', KEYS[4], due, ARGV[1])
return false
"""

# KEYS: 1 state, 2 lease. ARGV: job id, lease ms, now, ttl.
_BEGIN = """
if redis.call('EXISTS', KEYS[2]) == 1 then
  return {'busy', redis.call('HGET', KEYS[1], 'active') or ''}
end
local fence = redis.call('HINCRBY', KEYS[1], 'fence', 1)
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('SET', KEYS[2], fence, 'PX', ARGV[2])
redis.call('HSET', KEYS[1], 'active', ARGV[1], 'active_since', ARGV[3])
redis.call('HDEL', KEYS[1], 'deferred')
return {'ok', tostring(fence), redis.call('HGET', KEYS[1], 'wanted') or '0',
        redis.call('HGET', KEYS[1], 'cursor') or '',
        redis.call('HGET', KEYS[1], 'covered') or '0',
        redis.call('HGET', KEYS[1], 'listed') or '0'}
"""

# KEYS: 1 state, 2 lease, 3 dirty, 4 due. ARGV: fence, generation, job id, cursor, ref, lease ms,
# now, spacing, batch, job id prefix, executions listed by the read. Returns false when the read
# covered every hint (the notebook is clean), {'again', wanted} when `batch` or more hints came
# meanwhile, or an urgent one (the job reads again at once), {'deferred'} when fewer came: the
# lease is released and a new job waits in `due` for more hints or for the spacing to pass, so
# no worker waits.
_FINISH_ROUND = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return redis.error_reply('LEASELOST') end
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'cursor', ARGV[4]) end
redis.call('HSET', KEYS[1], 'last_sync_at', ARGV[7], 'covered', ARGV[2], 'listed', ARGV[11])
redis.call('HDEL', KEYS[1], 'last_error', 'last_error_at', 'dead')
local wanted = redis.call('HGET', KEYS[1], 'wanted') or '0'
local own = redis.call('HGET', KEYS[1], 'active') == ARGV[3]
if wanted == ARGV[2] then
  redis.call('ZREM', KEYS[3], ARGV[5])
  redis.call('DEL', KEYS[2])
  if own then redis.call('HDEL', KEYS[1], 'active', 'active_since') end
  return false
end
local urgent = tonumber(redis.call('HGET', KEYS[1], 'urgent') or '0')
if tonumber(wanted) - tonumber(ARGV[2]) >= tonumber(ARGV[9]) or urgent > tonumber(ARGV[2]) then
  redis.call('PEXPIRE', KEYS[2], ARGV[6])
  return {'again', wanted}
end
redis.call('DEL', KEYS[2])
if own then
  local id = ARGV[10] .. redis.call('HINCRBY', KEYS[1], 'jobs', 1)
  redis.call('HSET', KEYS[1], 'active', id, 'active_since', ARGV[7], 'deferred', '1')
  redis.call('ZADD', KEYS[4], tonumber(ARGV[7]) + tonumber(ARGV[8]), ARGV[5])
end
return {'deferred'}
"""

# KEYS: 1 state, 2 due. ARGV: ref. The deferred job of a notebook whose wait is over, to enqueue
# (false when a hint or another worker already released it).
_RELEASE = """
if redis.call('ZREM', KEYS[2], ARGV[1]) == 0 then return false end
if redis.call('HDEL', KEYS[1], 'deferred') == 0 then return false end
return redis.call('HGET', KEYS[1], 'active') or false
"""

# KEYS: 1 state, 2 lease. ARGV: fence, job id, job id prefix, now.
_HAND_OFF = """
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
if redis.call('HGET', KEYS[1], 'active') ~= ARGV[2] then return false end
local id = ARGV[3] .. redis.call('HINCRBY', KEYS[1], 'jobs', 1)
redis.call('HSET', KEYS[1], 'active', id, 'active_since', ARGV[4])
return id
"""

# KEYS: 1 state, 2 lease. ARGV: fence ('' when none), job id, final flag, error, now, ttl.
_FAIL = """
if ARGV[1] ~= '' and redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
redis.call('HSET', KEYS[1], 'last_error', ARGV[4], 'last_error_at', ARGV[5])
redis.call('EXPIRE', KEYS[1], ARGV[6])
local active = redis.call('HGET', KEYS[1], 'active') == ARGV[2]
if ARGV[3] == '1' then
  if active then redis.call('HDEL', KEYS[1], 'active', 'active_since') end
  redis.call('HSET', KEYS[1], 'dead', ARGV[2])
elseif active then
  redis.call('HSET', KEYS[1], 'active_since', ARGV[5])
end
return 1
"""

# KEYS: 1 lease. ARGV: fence, lease ms.
_HEARTBEAT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
"""

# KEYS: 1 state, 2 lease, 3 due. ARGV: expected active job id ('' for none), job id prefix, now,
# ttl, ref.
_TAKE_OVER = """
if redis.call('EXISTS', KEYS[2]) == 1 then return false end
if (redis.call('HGET', KEYS[1], 'active') or '') ~= ARGV[1] then return false end
local id = ARGV[2] .. redis.call('HINCRBY', KEYS[1], 'jobs', 1)
redis.call('HSET', KEYS[1], 'active', id, 'active_since', ARGV[3])
redis.call('HDEL', KEYS[1], 'dead', 'deferred')
redis.call('ZREM', KEYS[3], ARGV[5])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return id
"""


class Deferred:
    """What `finish_round` returns when the next read waits for more hints."""


DEFERRED = Deferred()


class LeaseLost(Exception):
    """Another sync took the notebook over; this one must stop without writing."""


@dataclass(frozen=True)
class Claim:
    """A sync's hold on a notebook: its fencing token and what it must at least cover."""

    application_id: str
    notebook_id: str
    job_id: str
    fence: int
    generation: int
    cursor_ms: int | None
    hints: int = 0  # hints since the previous read (a measure of how many runs ended since)
    listed: int = 0  # executions the previous read of the notebook listed


@dataclass(frozen=True)
class Busy:
    """Another sync holds the notebook right now."""

    active: str | None


@dataclass(frozen=True)
class NotebookSyncStatus:
    application_id: str
    notebook_id: str
    dirty_since: float | None
    active: str | None
    active_since: float | None
    leased: bool
    dead: str | None
    last_error: str | None
    last_sync_at: float | None
    hinted_at: float | None = None  # when a read was last asked for (any hint)


class SyncState:
    """The coordination state of notebook syncs in Redis (`redis` decodes responses)."""

    def __init__(self, redis: redis_lib.Redis, *, lease_seconds: float, ttl: int) -> None:
        self.redis = redis
        self.lease_ms = max(1, int(lease_seconds * 1000))
        self.lease_seconds = lease_seconds
        self.ttl = ttl
        self._mark_dirty = redis.register_script(MARK_DIRTY)
        self._begin = redis.register_script(_BEGIN)
        self._finish_round = redis.register_script(_FINISH_ROUND)
        self._hand_off = redis.register_script(_HAND_OFF)
        self._fail = redis.register_script(_FAIL)
        self._heartbeat = redis.register_script(_HEARTBEAT)
        self._take_over = redis.register_script(_TAKE_OVER)
        self._release = redis.register_script(_RELEASE)

    def mark_dirty(self, pipe: Pipeline, application_id: str, notebook_id: str, now: float) -> None:
        """Queue on `pipe` the marking of the notebook as dirty. Its result is the id of the job
        to enqueue, or None when a job is already queued or running for the notebook, or waits."""
        keys_, args = self.dirty_marking(application_id, notebook_id, now)
        self._mark_dirty(keys=keys_, args=args, client=pipe)

    def dirty_marking(
        self, application_id: str, notebook_id: str, now: float, *, urgent: bool = False
    ) -> tuple[list[str], list[str | float | int]]:
        """The KEYS and ARGV of `MARK_DIRTY` for the notebook; `urgent` for the callback of a
        pipeline step, whose next step waits for the read."""
        return (
            [
                keys.sync_state(application_id, notebook_id),
                keys.dirty_notebooks(),
                keys.notebooks(),
                keys.due_syncs(),
            ],
            [
                keys.notebook_ref(application_id, notebook_id),
                now,
                self.ttl,
                keys.sync_job_prefix(application_id, notebook_id, now),
                defaults.SYNC_SPACING,
                defaults.SYNC_BATCH,
                "1" if urgent else "0",
            ],
        )

    def begin(self, application_id: str, notebook_id: str, job_id: str, now: float) -> Claim | Busy:
        result = self._begin(
            keys=[
                keys.sync_state(application_id, notebook_id),
                keys.sync_lease(application_id, notebook_id),
            ],
            args=[job_id, self.lease_ms, now, self.ttl],
        )
        if result[0] == "busy":
            return Busy(result[1] or None)
        _, fence, generation, cursor, covered, listed = result
        return Claim(
            application_id,
            notebook_id,
            job_id,
            int(fence),
            int(generation),
            int(cursor) if cursor else None,
            hints=max(0, int(generation) - int(covered)),
            listed=int(listed),
        )

    def finish_round(
        self, claim: Claim, cursor_ms: int | None, now: float, *, listed: int = 0
    ) -> int | Deferred | None:
        """Record a finished read that listed `listed` executions. None when it covered every
        hint (the notebook is clean and released); DEFERRED when a few hints came meanwhile (the
        next read waits in `due`, see `release_due`); otherwise the newer generation the next
        read, at once, must cover."""
        try:
            result = self._finish_round(
                keys=[
                    keys.sync_state(claim.application_id, claim.notebook_id),
                    keys.sync_lease(claim.application_id, claim.notebook_id),
                    keys.dirty_notebooks(),
                    keys.due_syncs(),
                ],
                args=[
                    claim.fence,
                    claim.generation,
                    claim.job_id,
                    "" if cursor_ms is None else cursor_ms,
                    keys.notebook_ref(claim.application_id, claim.notebook_id),
                    self.lease_ms,
                    now,
                    defaults.SYNC_SPACING,
                    defaults.SYNC_BATCH,
                    keys.sync_job_prefix(claim.application_id, claim.notebook_id, now),
                    listed,
                ],
            )
        except redis_lib.ResponseError as exc:
            if "LEASELOST" in str(exc):
                raise LeaseLost(claim.notebook_id) from None
            raise
        if result is None:
            return None
        if result[0] == "deferred":
            return DEFERRED
        return int(result[1])

    def release_due(self, now: float, limit: int = 100) -> list[tuple[str, str, str]]:
        """Take the deferred syncs whose wait is over: (application, notebook, job id) of each
        job to enqueue. Each is released once, whoever else looks at the same time."""
        refs = cast(
            list[str], self.redis.zrangebyscore(keys.due_syncs(), "-inf", now, start=0, num=limit)
        )
        released = []
        for ref in refs:
            application_id, notebook_id = keys.split_notebook_ref(ref)
            job_id = self._release(
                keys=[keys.sync_state(application_id, notebook_id), keys.due_syncs()], args=[ref]
            )
            if job_id:
                released.append((application_id, notebook_id, job_id))
        return released

    def hand_off(self, claim: Claim, now: float) -> str | None:
        """Release the notebook, still dirty, to a new job; its id (None if another job already
        became the active one)."""
        return self._hand_off(
            keys=[
                keys.sync_state(claim.application_id, claim.notebook_id),
                keys.sync_lease(claim.application_id, claim.notebook_id),
            ],
            args=[
                claim.fence,
                claim.job_id,
                keys.sync_job_prefix(claim.application_id, claim.notebook_id, now),
                now,
            ],
        )

    def fail(
        self,
        application_id: str,
        notebook_id: str,
        job_id: str,
        *,
        fence: int | None,
        error: str,
        final: bool,
        now: float,
    ) -> None:
        """Record a failed sync. The notebook stays dirty. A job that will be retried stays the
        active one (hints keep joining it); after the last attempt it becomes a dead letter."""
        self._fail(
            keys=[
                keys.sync_state(application_id, notebook_id),
                keys.sync_lease(application_id, notebook_id),
            ],
            args=[
                "" if fence is None else fence,
                job_id,
                "1" if final else "0",
                error,
                now,
                self.ttl,
            ],
        )

    def heartbeat(self, claim: Claim) -> bool:
        """Extend the lease; False when it is no longer this claim's."""
        return bool(
            self._heartbeat(
                keys=[keys.sync_lease(claim.application_id, claim.notebook_id)],
                args=[claim.fence, self.lease_ms],
            )
        )

    def take_over(
        self, application_id: str, notebook_id: str, expected_active: str | None, now: float
    ) -> str | None:
        """Replace a dead active job (or none) by a new job id, if nothing changed meanwhile."""
        return self._take_over(
            keys=[
                keys.sync_state(application_id, notebook_id),
                keys.sync_lease(application_id, notebook_id),
                keys.due_syncs(),
            ],
            args=[
                expected_active or "",
                keys.sync_job_prefix(application_id, notebook_id, now),
                now,
                self.ttl,
                keys.notebook_ref(application_id, notebook_id),
            ],
        )

    def clear_dead(self, application_id: str, notebook_id: str) -> None:
        self.redis.hdel(keys.sync_state(application_id, notebook_id), "dead")

    def dirty(self) -> list[tuple[str, str, float]]:
        """Every dirty notebook: (application, notebook, dirty since), longest waiting first."""
        entries = cast(
            list[tuple[str, float]],
            self.redis.zrange(keys.dirty_notebooks(), 0, -1, withscores=True),
        )
        return [(*keys.split_notebook_ref(ref), since) for ref, since in entries]

    def status(self, application_id: str, notebook_id: str) -> NotebookSyncStatus:
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(keys.sync_state(application_id, notebook_id))
            pipe.exists(keys.sync_lease(application_id, notebook_id))
            pipe.zscore(keys.dirty_notebooks(), keys.notebook_ref(application_id, notebook_id))
            state, leased, dirty_since = pipe.execute()

        def number(name: str) -> float | None:
            return float(state[name]) if state.get(name) else None

        return NotebookSyncStatus(
            application_id,
            notebook_id,
            dirty_since,
            state.get("active") or None,
            number("active_since"),
            bool(leased),
            state.get("dead") or None,
            state.get("last_error") or None,
            number("last_sync_at"),
            number("hinted_at"),
        )


class LeaseKeeper:
    """Keeps a claim's lease alive from a background thread while a sync works.

    The lease can then be short (a dead worker is noticed quickly) while one slow Losant
    request may take longer than it. `lost` is set when a renewal finds the lease gone.
    """

    def __init__(self, state: SyncState, claim: Claim) -> None:
        self.state = state
        self.claim = claim
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lease-keeper", daemon=True)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        interval = self.state.lease_seconds / 3
        while not self._stop.wait(interval):
            try:
                if not self.state.heartbeat(self.claim):
                    self.lost.set()
                    return
            except redis_lib.RedisError:
                log.warning("could not renew the lease of a sync", exc_info=True)
