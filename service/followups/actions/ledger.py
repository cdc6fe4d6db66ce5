"""The action ledger: exactly-once effects over at-least-once delivery.

Every follow-up (execute, patch, retry, notify) gets a deterministic key (pipeline run, step,
source execution, terminal status...). Whoever decides on the action first *opens* it with an
atomic SET NX; every later decision with the same key (a redelivered callback, a second sync, a
retried job) finds it open and does nothing. A worker then *acquires* the open action under a
lease, performs it and records the outcome. If the worker dies in between, the lease runs out,
the action comes due again, and the next worker that acquires it is told that an earlier attempt
may have acted (`Lease.attempt > 1`) so it can ask Losant before acting again.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, cast

import redis as redis_lib

from service import defaults, keys
from service.errors import NbrelayError
from service.followups.due import DueSchedule
from service.times import iso

_OPEN = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
  redis.call('ZADD', KEYS[3], ARGV[5], ARGV[4])
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[5] - ARGV[2])
  return 1
end
return 0
"""


class ActionNotFound(NbrelayError):
    """No action with that key is recorded (never opened, or past its retention)."""


class ActionState(StrEnum):
    PENDING = "pending"  # opened, waiting for a worker (now or at due_at)
    RUNNING = "running"  # a worker holds it under a lease
    DONE = "done"  # performed; `outcome` says what came of it
    FAILED = "failed"  # will not be performed; `error` says why


@dataclass
class ActionRecord:
    key: str
    kind: str
    spec: dict[str, Any]
    state: ActionState
    created_at: float
    due_at: float
    attempts: int = 0
    token: str | None = None
    lease_until: float | None = None
    outcome: dict[str, Any] | None = None
    error: str | None = None
    updated_at: float | None = None
    progress: dict[str, Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @property
    def starting(self) -> bool:
        """Whether the action is still to be performed (or being performed)."""
        return self.state in (ActionState.PENDING, ActionState.RUNNING)

    @property
    def started_execution(self) -> str | None:
        """The execution an execute or retry action started: the id Losant answered, or the one
        found in Losant's `/logs` after the answer was lost; None until it is recorded."""
        if self.state is not ActionState.DONE or not self.outcome:
            return None
        return self.outcome.get("execution_id")

    def describe(self) -> dict[str, Any]:
        """The public view of the action (API and CLI): no lease token, no nonce (an execution
        carries it only once the action started it), times in ISO 8601."""
        return {
            "key": self.key,
            "kind": self.kind,
            "state": self.state.value,
            "spec": {name: value for name, value in self.spec.items() if name != "nonce"},
            "attempts": self.attempts,
            "outcome": self.outcome,
            "error": self.error,
            "createdAt": iso(self.created_at),
            "dueAt": iso(self.due_at),
            "updatedAt": iso(self.updated_at) if self.updated_at is not None else None,
            "history": [{**h, "at": iso(h["at"])} for h in self.history],
        }

    @classmethod
    def from_json(cls, raw: str | bytes) -> ActionRecord:
        data = json.loads(raw)
        data["state"] = ActionState(data["state"])
        return cls(**data)


@dataclass(frozen=True)
class Lease:
    """The right to perform one action until `record.lease_until`."""

    record: ActionRecord
    token: str

    @property
    def attempt(self) -> int:
        return self.record.attempts

    @property
    def key(self) -> str:
        return self.record.key


class Ledger:
    def __init__(
        self,
        redis: redis_lib.Redis,
        *,
        ttl: int,
        lease: float = defaults.ACTION_LEASE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`ttl`: seconds action records are kept; `lease`: seconds a worker may hold one."""
        self.redis = redis
        self.lease = lease
        self.ttl = ttl
        self.clock = clock
        self._open = redis.register_script(_OPEN)
        self._due = DueSchedule(redis, keys.actions_due())

    def open(
        self, key: str, kind: str, spec: dict[str, Any], *, due_at: float | None = None
    ) -> bool:
        """Claim `key` for one action; False when it was claimed before (nothing to do).

        An action due now is expected to be dispatched by the caller right away; it comes due
        in the ledger only after a lease, as a safety net should that dispatch be lost.
        """
        now = self.clock()
        due = now if due_at is None else due_at
        record = ActionRecord(key, kind, spec, ActionState.PENDING, now, due, updated_at=now)
        score = now + self.lease if due <= now else due
        created = self._open(
            keys=[keys.action(key), keys.actions_due(), keys.actions_by_time()],
            args=[record.to_json(), self.ttl, score, key, now],
        )
        return bool(created)

    def get(self, key: str) -> ActionRecord | None:
        raw = self.redis.get(keys.action(key))
        return ActionRecord.from_json(raw) if raw else None

    def acquire(self, key: str) -> Lease | None:
        """A lease on `key` when it is pending and due, or running under an expired lease (its
        worker is presumed dead); None when it is finished, not due, or held by a live worker."""
        token = secrets.token_hex(8)
        result: list[Lease | None] = [None]

        def attempt(pipe: redis_lib.client.Pipeline) -> None:
            result[0] = None
            raw = pipe.get(keys.action(key))
            if not raw:
                pipe.multi()
                pipe.zrem(keys.actions_due(), key)
                return
            record = ActionRecord.from_json(raw)
            now = self.clock()
            if record.state in (ActionState.DONE, ActionState.FAILED):
                pipe.multi()
                pipe.zrem(keys.actions_due(), key)
                return
            if record.state is ActionState.PENDING and record.due_at > now:
                return
            if record.state is ActionState.RUNNING and (record.lease_until or 0) > now:
                return
            record.state = ActionState.RUNNING
            record.attempts += 1
            record.token = token
            record.lease_until = now + self.lease
            record.updated_at = now
            pipe.multi()
            pipe.set(keys.action(key), record.to_json(), keepttl=True)
            pipe.zadd(keys.actions_due(), {key: record.lease_until})
            result[0] = Lease(record, token)

        self.redis.transaction(attempt, keys.action(key))
        return result[0]

    def record_failure(self, key: str, kind: str, spec: dict[str, Any], error: str) -> bool:
        """Open `key` as already failed: an action that could not even be prepared (its template
        failed), kept so that it can be seen, and so that it is not prepared again."""
        now = self.clock()
        record = ActionRecord(
            key, kind, spec, ActionState.FAILED, now, now, error=error, updated_at=now
        )
        if not self.redis.set(keys.action(key), record.to_json(), nx=True, ex=self.ttl):
            return False
        self.redis.zadd(keys.actions_by_time(), {key: now})
        return True

    def recent(self, limit: int, kind: str | None = None) -> list[ActionRecord]:
        """The most recently opened actions (of one kind), newest first."""
        found: list[ActionRecord] = []
        start = 0
        while len(found) < limit:
            batch = cast(
                list[str],
                self.redis.zrevrange(keys.actions_by_time(), start, start + 4 * limit - 1),
            )
            if not batch:
                break
            start += len(batch)
            for raw in self.redis.mget([keys.action(k) for k in batch]):
                record = ActionRecord.from_json(raw) if raw else None
                if record is not None and (kind is None or record.kind == kind):
                    found.append(record)
        return found[:limit]

    def checkpoint(self, lease: Lease, progress: dict[str, Any]) -> bool:
        """Keep what an attempt learnt before acting (a patch's notebook as it was), so that an
        attempt after a crash still knows it."""
        result = [False]

        def attempt(pipe: redis_lib.client.Pipeline) -> None:
            raw = pipe.get(keys.action(lease.key))
            record = ActionRecord.from_json(raw) if raw else None
            if record is None or record.token != lease.token:
                return
            result[0] = True
            record.progress = progress
            pipe.multi()
            pipe.set(keys.action(lease.key), record.to_json(), keepttl=True)

        self.redis.transaction(attempt, keys.action(lease.key))
        return result[0]

    def complete(self, lease: Lease, outcome: dict[str, Any]) -> bool:
        """Record that the action was performed. False when the lease was lost to another worker."""
        return self._finish(lease, ActionState.DONE, outcome=outcome)

    def fail(self, lease: Lease, error: str) -> bool:
        """Record that the action will not be performed, and why."""
        return self._finish(lease, ActionState.FAILED, error=error)

    def postpone(self, lease: Lease, delay: float, error: str) -> bool:
        """Give the action back after a transient failure, to be tried again in `delay` seconds."""
        return self._finish(lease, ActionState.PENDING, error=error, delay=delay)

    def defer(self, lease: Lease, delay: float, reason: str) -> bool:
        """Give the action back untried, to be performed in `delay` seconds: the attempt is not
        counted, so it neither brings the action closer to ACTION_MAX_ATTEMPTS nor makes the next
        attempt look for what this one did (it did nothing)."""
        return self._finish(lease, ActionState.PENDING, error=reason, delay=delay, uncount=True)

    def _finish(
        self,
        lease: Lease,
        state: ActionState,
        *,
        outcome: dict[str, Any] | None = None,
        error: str | None = None,
        delay: float = 0.0,
        uncount: bool = False,
    ) -> bool:
        key = lease.key
        result = [False]

        def attempt(pipe: redis_lib.client.Pipeline) -> None:
            raw = pipe.get(keys.action(key))
            record = ActionRecord.from_json(raw) if raw else None
            if (
                record is None
                or record.token != lease.token
                or record.state is not ActionState.RUNNING
            ):
                result[0] = False
                return
            now = self.clock()
            record.history.append(
                {"attempt": record.attempts, "at": now, "state": state.value, "error": error}
            )
            if uncount:
                record.attempts -= 1
            record.state, record.token, record.lease_until = state, None, None
            record.outcome, record.error, record.updated_at = outcome, error, now
            if state is ActionState.PENDING:
                record.due_at = now + delay
            pipe.multi()
            pipe.set(keys.action(key), record.to_json(), keepttl=True)
            if state is ActionState.PENDING:
                pipe.zadd(keys.actions_due(), {key: record.due_at})
            else:
                pipe.zrem(keys.actions_due(), key)
            result[0] = True

        self.redis.transaction(attempt, keys.action(key))
        return result[0]

    def dispatch_due(self, limit: int = defaults.DUE_BATCH) -> list[str]:
        """Keys of actions that are due (or whose worker is presumed dead), for enqueueing.

        Each returned key is pushed a lease into the future, so that it is handed out again only
        if the job enqueued for it never acquires it.
        """
        now = self.clock()
        return self._due.take(now, now + self.lease, limit)
