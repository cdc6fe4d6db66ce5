"""The execution history in Redis: Losant's records, nbrelay's metadata beside them, and indexes.

One hash per execution holds Losant's record exactly as the API returned it (field `record`)
next to what only nbrelay knows: who requested the run and with which context, how many
callbacks named it, when it was first seen and when it turned terminal. Sorted sets index the
executions by time, by notebook and by status, scored by the time the run was queued.

Writes from a sync go through one Lua script that checks the sync's fencing token first, so a
sync that lost its lease can never overwrite what a newer sync stored, and that claims the
terminal transition of each execution (SET NX) in the same step as it stores the record.

Retention applies to every key: each write refreshes a TTL of `NBRELAY_RETENTION_DAYS`, and
`trim()` removes index entries and stream entries older than that.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

import redis as redis_lib
from redis.typing import EncodableT

from service import defaults, json_input, keys
from service.events.records import (
    RUNNING_STATUSES,
    STATUSES,
    TERMINAL_STATUSES,
    ExecutionRecord,
    InvalidCursor,
    Page,
)
from service.events.sync_state import LeaseLost
from service.times import now_iso, parse_time_ms

# Stores Losant's records for one notebook, fenced by the sync's lease, and claims terminal
# transitions. KEYS: 1 lease, 2 by-time, 3 by-notebook, 4 outbox, 5 pending-by-notebook,
# 6 pending-checks, 7 notebooks, 8..7+S status indexes, then 4 per execution (hash, record,
# claim, status index). ARGV: fence, now (iso), ttl, S, n, notebook ref, application, notebook,
# now (ms), first check (s, '' for none), then 6 per execution (id, status, queued ms, record
# json, terminal flag, pending member).
_UPSERT = """
local fence, now, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local s, n = tonumber(ARGV[4]), tonumber(ARGV[5])
if redis.call('GET', KEYS[1]) ~= fence then return redis.error_reply('LEASELOST') end
local ref, app, nb = ARGV[6], ARGV[7], ARGV[8]
local claimed = {}
local now_ms, first_check = tonumber(ARGV[9]), ARGV[10]
for i = 0, n - 1 do
  local k, a = 8 + s + 4 * i, 11 + 6 * i
  local ek, rk, ck, sk = KEYS[k], KEYS[k + 1], KEYS[k + 2], KEYS[k + 3]
  local id, status, score, record, terminal, member =
    ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], ARGV[a + 5]
  local old = redis.call('HGET', ek, 'status')
  -- a terminal run read again as it was stored (the margin before the cursor) is left alone
  if not (old == status and terminal == '1' and redis.call('GET', rk) == record) then
  if old and old ~= status then
    for j = 8, 7 + s do redis.call('ZREM', KEYS[j], id) end
  end
  redis.call('SET', rk, record, 'EX', ttl)
  redis.call('HSET', ek, 'application', app, 'notebook', nb,
             'status', status, 'queued_ms', score, 'updated_at', now)
  redis.call('HDEL', ek, 'record')  -- kept here by an earlier version
  redis.call('HSETNX', ek, 'first_seen_at', now)
  redis.call('EXPIRE', ek, ttl)
  redis.call('ZADD', KEYS[2], score, id)
  redis.call('ZADD', KEYS[3], score, id)
  redis.call('ZADD', sk, score, id)
  redis.call('EXPIRE', sk, ttl)
  end
  if terminal == '1' then
    redis.call('ZREM', KEYS[5], id)
    redis.call('ZREM', KEYS[6], member)
    if redis.call('EXISTS', ck) == 0 and redis.call('HSETNX', ek, 'claimed', status) == 1 then
      redis.call('HSET', ek, 'terminal_at', now)
      redis.call('ZADD', KEYS[4], now_ms, id)
      claimed[#claimed + 1] = id
    end
  elseif not old and first_check ~= '' then
    -- first seen in flight: checked until it ends, as a run nbrelay started (NX keeps theirs);
    -- not among the notebook's runs nbrelay waits for (KEYS[5]), which count against the cap
    redis.call('ZADD', KEYS[6], 'NX', first_check, member)
  end
end
redis.call('ZADD', KEYS[7], now_ms, ref)
for j = 2, 7 do redis.call('EXPIRE', KEYS[j], ttl) end
return claimed
"""

# Records a run nbrelay requested. KEYS: 1 hash, 2 by-time, 3 by-notebook, 4 pending-by-notebook,
# 5 pending-checks, 6 notebooks. ARGV: id, application, notebook, requested ms, next check (s),
# pending member, ttl, then field/value pairs of metadata.
_RECORD_REQUEST = """
local id, app, nb, ms, check, member, ttl =
  ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], tonumber(ARGV[7])
redis.call('HSET', KEYS[1], 'application', app, 'notebook', nb)
for i = 8, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('HSETNX', KEYS[1], 'queued_ms', ms)
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('ZADD', KEYS[2], 'NX', ms, id)
redis.call('ZADD', KEYS[3], 'NX', ms, id)
if not redis.call('HGET', KEYS[1], 'terminal_at') then
  redis.call('ZADD', KEYS[4], ms, id)
  redis.call('ZADD', KEYS[5], check, member)
end
redis.call('ZADD', KEYS[6], ms, app .. ':' .. nb)
for j = 2, 6 do redis.call('EXPIRE', KEYS[j], ttl) end
return 1
"""

# Records one hint (a callback or relay request) in one step. A relay message already accepted
# is a duplicate: nothing happens (-1). Otherwise the callback is counted for the execution it
# names only if the stored execution belongs to the hint's notebook, the relay message id is
# remembered, and the notebook's token bucket decides whether the raw event goes into the capped
# event stream (0) or not (the ms until a token is back). Counting and remembering cost no
# memory that grows, so they happen either way; only what grows is rationed. The stream append,
# the one write that can fail on its own, comes first: a script that stops there has changed
# nothing, so the sender's retry is not taken for a duplicate.
# KEYS: 1 bucket, 2 event stream, 3 execution hash ('' when none), 4 message marker ('' when
# none). ARGV: application, notebook, now (iso), rate (per s), burst, stream maxlen, ttl,
# marker ttl, then field/value pairs of the event.
RECORD_HINT = """
local bucket, stream, execution, marker = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
if marker ~= '' and redis.call('EXISTS', marker) == 1 then return -1 end
local rate, burst = tonumber(ARGV[4]), tonumber(ARGV[5])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local state = redis.call('HMGET', bucket, 'tokens', 'at')
local tokens, at = tonumber(state[1]), tonumber(state[2])
if not tokens or not at then tokens, at = burst, now end
tokens = math.min(burst, tokens + math.max(0, now - at) * rate / 1000)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
  local entry = {}
  for i = 9, #ARGV do entry[#entry + 1] = ARGV[i] end
  redis.call('XADD', stream, 'MAXLEN', '~', ARGV[6], '*', unpack(entry))
  redis.call('EXPIRE', stream, ARGV[7])
else
  wait = math.ceil((1 - tokens) * 1000 / rate)
end
if execution ~= '' then
  local owner = redis.call('HMGET', execution, 'application', 'notebook')
  if owner[1] == ARGV[1] and owner[2] == ARGV[2] then
    redis.call('HINCRBY', execution, 'callbacks', 1)
    redis.call('HSET', execution, 'last_callback_at', ARGV[3])
  end
end
if marker ~= '' then redis.call('SET', marker, '1', 'EX', ARGV[8]) end
redis.call('HSET', bucket, 'tokens', tostring(tokens), 'at', now)
redis.call('PEXPIRE', bucket, math.ceil(burst * 1000 / rate))
return wait
"""

_StreamEntries = list[tuple[str, dict[str, str]]]  # an XREVRANGE reply, decoded
_NOT_META = ("record", "application", "notebook", "claimed")  # hash fields that are not metadata


class ExecutionStore:
    """Executions, their indexes, the raw event stream and the transition record in Redis.

    `redis` must decode responses (`decode_responses=True`); `ttl` is the retention in seconds.
    """

    def __init__(self, redis: redis_lib.Redis, *, ttl: int) -> None:
        self.redis = redis
        self.ttl = ttl
        self._upsert = redis.register_script(_UPSERT)
        self._record_request = redis.register_script(_RECORD_REQUEST)

    # writes

    def record_request(
        self,
        *,
        application_id: str,
        notebook_id: str,
        execution_id: str,
        requested_by: str,
        requested_at: float,
        first_check_at: float,
        context: Mapping[str, Any] | None = None,
        relative_to: str | int | None = None,
        notebook_name: str | None = None,
    ) -> None:
        """Remember that nbrelay started this run, and have the reconciler look at it at
        `first_check_at` (s since epoch) in case its callback never comes."""
        fields: dict[str, str] = {
            "requested_by": requested_by,
            "requested_at": now_iso(requested_at),
        }
        if context is not None:
            fields["request_context"] = json.dumps(context, separators=(",", ":"))
        if relative_to is not None:
            fields["relative_to"] = str(relative_to)
        keys_ = [
            keys.execution(execution_id),
            keys.executions_by_time(),
            keys.executions_by_notebook(application_id, notebook_id),
            keys.pending_by_notebook(application_id, notebook_id),
            keys.pending_checks(),
            keys.notebooks(),
        ]
        args: list[Any] = [
            execution_id,
            application_id,
            notebook_id,
            int(requested_at * 1000),
            first_check_at,
            keys.pending_member(application_id, notebook_id, execution_id),
            self.ttl,
        ]
        for name, value in fields.items():
            args += [name, value]
        self._record_request(keys=keys_, args=args)
        if notebook_name:
            self.remember_notebook_name(application_id, notebook_id, notebook_name)

    def remember_notebook_name(self, application_id: str, notebook_id: str, name: str) -> None:
        with self.redis.pipeline() as pipe:
            pipe.hset(keys.notebook_names(), keys.notebook_ref(application_id, notebook_id), name)
            pipe.expire(keys.notebook_names(), self.ttl)
            pipe.execute()

    def upsert(
        self,
        application_id: str,
        notebook_id: str,
        records: Sequence[Mapping[str, Any]],
        *,
        fence: int,
        now: float | None = None,
        first_check_after: float | None = None,
    ) -> list[str]:
        """Store Losant's records of one notebook's executions; return the ids whose terminal
        transition this call claimed. LeaseLost when `fence` no longer holds the notebook.

        With `first_check_after` (seconds), a run seen for the first time before it ended is
        checked by the reconciler from then on until it ends, whoever started it: its callback
        may never come (a start whose answer was lost is known only from `/logs`)."""
        moment = time.time() if now is None else now
        status_keys = [keys.executions_by_status(s) for s in STATUSES]
        keys_: list[str] = [
            keys.sync_lease(application_id, notebook_id),
            keys.executions_by_time(),
            keys.executions_by_notebook(application_id, notebook_id),
            keys.transition_outbox(application_id, notebook_id),
            keys.pending_by_notebook(application_id, notebook_id),
            keys.pending_checks(),
            keys.notebooks(),
            *status_keys,
        ]
        args: list[Any] = [
            fence,
            now_iso(moment),
            self.ttl,
            len(status_keys),
            len(records),
            keys.notebook_ref(application_id, notebook_id),
            application_id,
            notebook_id,
            int(moment * 1000),
            "" if first_check_after is None else moment + first_check_after,
        ]
        for record in records:
            execution_id = str(record["id"])
            status = str(record.get("status") or "unknown")
            queued = parse_time_ms(record.get("runQueuedAt")) or int(moment * 1000)
            keys_ += [
                keys.execution(execution_id),
                keys.execution_record(execution_id),
                keys.terminal_claim(execution_id),
                keys.executions_by_status(status),
            ]
            args += [
                execution_id,
                status,
                queued,
                json.dumps(record, separators=(",", ":")),
                "1" if status in TERMINAL_STATUSES else "0",
                keys.pending_member(application_id, notebook_id, execution_id),
            ]
        try:
            return list(self._upsert(keys=keys_, args=args))
        except redis_lib.ResponseError as exc:
            if "LEASELOST" in str(exc):
                raise LeaseLost(f"sync of notebook {notebook_id} lost its lease") from None
            raise

    def record_hint(
        self,
        application_id: str,
        notebook_id: str,
        event: Mapping[str, str],
        *,
        execution_id: str | None,
        message_id: str | None,
        now: float,
    ) -> tuple[list[str], list[EncodableT]]:
        """The KEYS and ARGV of `RECORD_HINT` for one hint about a notebook (`Ingress` runs it
        together with the dirty marking, in one call). Its result: -1 when `message_id` was
        accepted before (a duplicate), 0 when the event went into the event stream, else the
        ms until the notebook's budget (HINT_RATE per second, HINT_BURST at once) records the
        next one. `execution_id`, which the body claims, is counted as a callback only when it
        is an execution of this notebook."""
        args: list[EncodableT] = [
            application_id,
            notebook_id,
            now_iso(now),
            defaults.HINT_RATE,
            defaults.HINT_BURST,
            defaults.EVENT_STREAM_MAXLEN,
            self.ttl,
            2 * defaults.WEBHOOK_TOLERANCE,
        ]
        for name, value in event.items():
            args += [name, value]
        keys_ = [
            keys.hint_budget(application_id, notebook_id),
            keys.events(),
            keys.execution(execution_id) if execution_id else "",
            keys.webhook_seen(message_id) if message_id else "",
        ]
        return keys_, args

    def events(self, count: int = 100) -> list[tuple[str, dict[str, str]]]:
        """The newest raw events, newest first."""
        entries = cast(_StreamEntries, self.redis.xrevrange(keys.events(), count=count))
        return [(entry_id, data) for entry_id, data in entries]

    def events_naming(
        self, execution_id: str, since_ms: int, until_ms: int | None, scan: int
    ) -> tuple[list[tuple[str, dict[str, str]]], bool]:
        """Raw events that name `execution_id`, oldest first, among the first `scan` events
        received from `since_ms` to `until_ms` (None: now); and whether those were all the
        events of that time (False: the scan stopped before its end)."""
        high = str(until_ms) if until_ms is not None else "+"  # a bare ms: its last entry
        entries = cast(
            _StreamEntries,
            self.redis.xrange(keys.events(), min=str(max(since_ms, 0)), max=high, count=scan),
        )
        naming = [
            (entry_id, data) for entry_id, data in entries if data.get("execution") == execution_id
        ]
        return naming, len(entries) < scan

    # transitions

    def outbox(self, application_id: str, notebook_id: str) -> list[str]:
        """Executions of the notebook whose claimed transition has not been handled yet."""
        index = keys.transition_outbox(application_id, notebook_id)
        return cast(list[str], self.redis.zrange(index, 0, -1))

    def finish_transitions(
        self,
        application_id: str,
        notebook_id: str,
        records: Sequence[ExecutionRecord],
        now: float | None = None,
    ) -> None:
        """Record handled terminal transitions of one notebook in the transition stream and take
        them out of its outbox, in one transaction: each handled transition is recorded once."""
        if not records:
            return
        at = now_iso(now)
        with self.redis.pipeline() as pipe:
            for record in records:
                pipe.xadd(
                    keys.transitions(),
                    {
                        "execution": record.id,
                        "application": record.application_id,
                        "notebook": record.notebook_id,
                        "status": record.status or "",
                        "at": at,
                    },
                    maxlen=defaults.TRANSITION_STREAM_MAXLEN,
                    approximate=True,
                )
            pipe.expire(keys.transitions(), self.ttl)
            pipe.zrem(keys.transition_outbox(application_id, notebook_id), *(r.id for r in records))
            pipe.execute()

    def drop_transitions(
        self, application_id: str, notebook_id: str, execution_ids: Sequence[str]
    ) -> None:
        """Take transitions whose execution is no longer stored out of the notebook's outbox."""
        self.redis.zrem(keys.transition_outbox(application_id, notebook_id), *execution_ids)

    def transitions(self, count: int = 100) -> list[dict[str, str]]:
        """The newest recorded transitions, newest first."""
        entries = cast(_StreamEntries, self.redis.xrevrange(keys.transitions(), count=count))
        return [data for _, data in entries]

    # reads

    def get(self, execution_id: str) -> ExecutionRecord | None:
        (record,) = self._fetch([execution_id])
        return record

    def get_many(self, execution_ids: Iterable[str]) -> list[ExecutionRecord]:
        """The executions stored among `execution_ids`, in the order asked for."""
        return [record for record in self._fetch(execution_ids) if record is not None]

    def _fetch(self, execution_ids: Iterable[str]) -> list[ExecutionRecord | None]:
        """The executions, in the order asked for (None for one not stored), in one round
        trip."""
        ids = list(execution_ids)
        with self.redis.pipeline(transaction=False) as pipe:
            for execution_id in ids:
                pipe.hgetall(keys.execution(execution_id))
                pipe.get(keys.execution_record(execution_id))
            replies = pipe.execute()
        return [
            self._record(execution_id, replies[2 * i], replies[2 * i + 1])
            for i, execution_id in enumerate(ids)
        ]

    @staticmethod
    def _record(
        execution_id: str, data: Mapping[str, str], record: str | None
    ) -> ExecutionRecord | None:
        if not data:
            return None
        record = record or data.get("record")  # an earlier version kept it in the hash
        meta = {k: v for k, v in data.items() if k not in _NOT_META}
        return ExecutionRecord(
            id=execution_id,
            application_id=data.get("application", ""),
            notebook_id=data.get("notebook", ""),
            losant=json.loads(record) if record else None,
            meta=meta,
        )

    def query(
        self,
        *,
        application_id: str | None = None,
        notebook_id: str | None = None,
        statuses: Sequence[str] = (),
        since_ms: int | None = None,
        until_ms: int | None = None,
        limit: int = defaults.API_PAGE_SIZE,
        cursor: str | None = None,
    ) -> Page:
        """Executions newest first (by queue time), filtered, one page at a time.

        The cursor is opaque: the position after the last item handed out, so pages stay
        consistent while new executions arrive.
        """
        if notebook_id and application_id:
            index = keys.executions_by_notebook(application_id, notebook_id)
        elif len(statuses) == 1:
            index = keys.executions_by_status(statuses[0])
        else:
            index = keys.executions_by_time()
        after = _decode_cursor(cursor) if cursor else None
        high: float | str = after[0] if after else (until_ms if until_ms is not None else "+inf")
        if after and until_ms is not None:
            high = min(after[0], until_ms)
        low: float | str = since_ms if since_ms is not None else "-inf"
        wanted = set(statuses)
        items: list[ExecutionRecord] = []
        last: tuple[float, str] | None = None
        offset, batch = 0, max(limit * 2, 50)
        while len(items) < limit:
            entries = cast(
                list[tuple[str, float]],
                self.redis.zrevrangebyscore(
                    index, high, low, start=offset, num=batch, withscores=True
                ),
            )
            if not entries:
                break
            offset += len(entries)
            candidates = [
                (member, score)
                for member, score in entries
                if not (after and score == after[0] and member >= after[1])
            ]
            records = {r.id: r for r in self.get_many(member for member, _ in candidates)}
            for member, score in candidates:
                record = records.get(member)
                if record is None:
                    continue
                if wanted and record.status not in wanted:
                    continue
                if notebook_id and record.notebook_id != notebook_id:
                    continue
                if application_id and record.application_id != application_id:
                    continue
                items.append(record)
                last = (score, member)
                if len(items) == limit:
                    break
            if len(entries) < batch:
                break
        next_cursor = _encode_cursor(last) if last and len(items) == limit else None
        return Page(items, next_cursor)

    def running_before(self, until_ms: int, limit: int) -> list[str]:
        """Ids of the executions queued before `until_ms` whose status, as last read from
        Losant, is queued or inProgress: from the status indexes, the newest `limit` of each."""
        with self.redis.pipeline(transaction=False) as pipe:
            for status in RUNNING_STATUSES:
                pipe.zrevrangebyscore(
                    keys.executions_by_status(status), until_ms, "-inf", start=0, num=limit
                )
            found = cast(list[list[str]], pipe.execute())
        return [execution_id for ids in found for execution_id in ids]

    def newest(self, application_id: str, notebook_id: str, count: int) -> list[ExecutionRecord]:
        """The notebook's `count` newest executions (by queue time), newest first: one range
        read and `count` record reads, whatever the notebook's history."""
        index = keys.executions_by_notebook(application_id, notebook_id)
        ids = cast(list[str], self.redis.zrevrange(index, 0, count - 1))
        return self.get_many(ids)

    def count_by_status(self) -> dict[str, int]:
        with self.redis.pipeline(transaction=False) as pipe:
            for status in STATUSES:
                pipe.zcard(keys.executions_by_status(status))
            counts = pipe.execute()
        return dict(zip(STATUSES, counts, strict=True))

    def count_by_status_per_hour(self, first_hour_ms: int, hours: int) -> list[dict[str, int]]:
        """How many executions queued in each of `hours` hours from `first_hour_ms` have each
        status now, by counting in the status indexes (scored by queue time): one round trip
        of `hours` x len(STATUSES) ZCOUNTs, whatever the number of executions."""
        hour_ms = 3600 * 1000
        with self.redis.pipeline(transaction=False) as pipe:
            for hour in range(hours):
                low = first_hour_ms + hour * hour_ms
                for status in STATUSES:
                    pipe.zcount(keys.executions_by_status(status), low, f"({low + hour_ms}")
            counts = pipe.execute()
        width = len(STATUSES)
        return [
            dict(zip(STATUSES, counts[hour * width : (hour + 1) * width], strict=True))
            for hour in range(hours)
        ]

    def notebook_refs(self) -> list[str]:
        """Every notebook nbrelay has heard of (`notebook_ref`), most recently active first."""
        return cast(list[str], self.redis.zrevrange(keys.notebooks(), 0, -1))

    def notebook_names(self) -> dict[str, str]:
        """notebook_ref -> name, for notebooks whose name nbrelay has seen."""
        return cast(dict[str, str], self.redis.hgetall(keys.notebook_names()))

    def notebook_name(self, application_id: str, notebook_id: str) -> str | None:
        """The notebook's name as last seen through the API, if nbrelay has seen it."""
        ref = keys.notebook_ref(application_id, notebook_id)
        return cast(str | None, self.redis.hget(keys.notebook_names(), ref))

    # sync backlog and pending runs (read by metrics and the reconciler)

    def sync_backlog(self, now: float) -> tuple[int, float]:
        """How many notebooks wait for a sync, and how long the oldest has waited (s)."""
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.zcard(keys.dirty_notebooks())
            pipe.zrange(keys.dirty_notebooks(), 0, 0, withscores=True)
            count, oldest = pipe.execute()
        return count, max(0.0, now - oldest[0][1]) if oldest else 0.0

    def pending_count(self) -> int:
        return self.redis.zcard(keys.pending_checks())

    def due_pending(
        self, now: float, limit: int = defaults.PENDING_CHECK_BATCH
    ) -> list[tuple[str, str, str]]:
        """Pending runs whose next check is due: (application, notebook, execution)."""
        members = cast(
            list[str],
            self.redis.zrangebyscore(keys.pending_checks(), "-inf", now, start=0, num=limit),
        )
        return [keys.split_pending_member(m) for m in members]

    def reschedule_pending(
        self,
        application_id: str,
        notebook_id: str,
        execution_id: str,
        *,
        next_check: float,
        overdue_at: float | None = None,
    ) -> int:
        """Move a pending run's next check to `next_check`; returns how many checks it had.
        `overdue_at` marks it overdue (once)."""
        member = keys.pending_member(application_id, notebook_id, execution_id)
        with self.redis.pipeline() as pipe:
            pipe.zadd(keys.pending_checks(), {member: next_check}, xx=True)
            pipe.hincrby(keys.execution(execution_id), "checks", 1)
            if overdue_at is not None:
                pipe.hsetnx(keys.execution(execution_id), "overdue_at", now_iso(overdue_at))
            results = pipe.execute()
        return int(results[1])

    def forget_pending(self, application_id: str, notebook_id: str, execution_id: str) -> None:
        """Stop checking a run (its record expired under retention)."""
        with self.redis.pipeline() as pipe:
            pipe.zrem(
                keys.pending_checks(),
                keys.pending_member(application_id, notebook_id, execution_id),
            )
            pipe.zrem(keys.pending_by_notebook(application_id, notebook_id), execution_id)
            pipe.execute()

    def terminal_count_since(self, application_id: str, notebook_id: str, since_ms: int) -> int:
        """How many stored executions of the notebook queued at or after `since_ms` are
        terminal."""
        return len(self.terminal_ids_since(application_id, notebook_id, since_ms))

    def terminal_ids_since(self, application_id: str, notebook_id: str, since_ms: int) -> list[str]:
        """Ids of the stored executions of the notebook queued at or after `since_ms` that are
        terminal."""
        ids = cast(
            list[str],
            self.redis.zrangebyscore(
                keys.executions_by_notebook(application_id, notebook_id), since_ms, "+inf"
            ),
        )
        return [record.id for record in self.get_many(ids) if record.is_terminal]

    def pending_count_since(self, application_id: str, notebook_id: str, since_ms: int) -> int:
        """How many runs nbrelay started on the notebook, requested at or after `since_ms`, are
        not terminal yet."""
        pending = keys.pending_by_notebook(application_id, notebook_id)
        return int(self.redis.zcount(pending, since_ms, "+inf"))

    def oldest_pending_ms(self, application_id: str, notebook_id: str) -> int | None:
        """Request time (ms) of the notebook's oldest run nbrelay started that is not terminal."""
        oldest = self.redis.zrange(
            keys.pending_by_notebook(application_id, notebook_id), 0, 0, withscores=True
        )
        return int(oldest[0][1]) if oldest else None

    # retention

    def trim(self, now: float | None = None) -> None:
        """Drop index and stream entries older than the retention period."""
        moment = time.time() if now is None else now
        cutoff_ms = int((moment - self.ttl) * 1000)
        notebook_refs = cast(list[str], self.redis.zrangebyscore(keys.notebooks(), "-inf", "+inf"))
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.zremrangebyscore(keys.executions_by_time(), "-inf", f"({cutoff_ms}")
            for status in STATUSES:
                pipe.zremrangebyscore(keys.executions_by_status(status), "-inf", f"({cutoff_ms}")
            for ref in notebook_refs:
                application_id, notebook_id = keys.split_notebook_ref(ref)
                index = keys.executions_by_notebook(application_id, notebook_id)
                pipe.zremrangebyscore(index, "-inf", f"({cutoff_ms}")
                pending = keys.pending_by_notebook(application_id, notebook_id)
                pipe.zremrangebyscore(pending, "-inf", f"({cutoff_ms}")
            pipe.zremrangebyscore(keys.notebooks(), "-inf", f"({cutoff_ms}")
            pipe.zremrangebyscore(keys.pending_checks(), "-inf", f"({moment - self.ttl}")
            pipe.xtrim(keys.events(), minid=f"{cutoff_ms}-0", approximate=False)
            pipe.xtrim(keys.transitions(), minid=f"{cutoff_ms}-0", approximate=False)
            pipe.execute()


_LARGEST_SCORE = 2**53  # milliseconds; every score up to here is a whole number as a float


def _encode_cursor(position: tuple[float, str]) -> str:
    raw = json.dumps([position[0], position[1]], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _decode_cursor(cursor: str) -> tuple[float, str]:
    """The position a cursor of `_encode_cursor` names: a finite score (Redis refuses others)
    and a member; InvalidCursor for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        score, member = json_input.loads(raw)
    except (binascii.Error, ValueError, TypeError):
        raise InvalidCursor("the cursor is not one this service handed out") from None
    if (
        isinstance(score, bool)
        or not isinstance(score, (int, float))
        or not -_LARGEST_SCORE <= score <= _LARGEST_SCORE  # also false for NaN
        or not isinstance(member, str)
    ):
        raise InvalidCursor("the cursor is not one this service handed out")
    return float(score), member
