"""Executions syncs may not have seen, per notebook, and the warning that says so.

`/logs` has no offset: it serves the newest `limit` runs queued since a time. When a page comes
back full at the largest `limit` Losant serves and its oldest run is still newer than the
notebook's cursor, the runs queued in between cannot be read. How many there were is bounded by
Losant's per-day count of finished runs since the cursor (`notebookMinuteCounts`, whole days, so
an upper bound) less the finished runs nbrelay stored since then. Syncs add that bound here; the
API, `nbrelay executions` and the dashboard show it, and it expires with the retention period.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import cast

import redis as redis_lib

from service import keys, metrics

log = logging.getLogger(__name__)


class UnseenExecutions:
    """The counts in Redis (`redis` decodes responses)."""

    def __init__(self, redis: redis_lib.Redis, *, ttl: int) -> None:
        self.redis = redis
        self.ttl = ttl

    def add(self, application_id: str, notebook_id: str, count: int, *, gap: int) -> None:
        """Record that up to `count` executions of the notebook queued since the cursor `gap`
        (ms) may not have been seen. Kept per gap, so a sync done again for the same gap (its
        worker died) changes nothing: only a larger bound for a gap adds the difference."""
        key = keys.unseen_executions(application_id, notebook_id)
        before = int(cast(str | None, self.redis.hget(key, str(gap))) or 0)
        if count <= before:
            return
        metrics.UNSEEN_EXECUTIONS.inc(count - before)
        ref = keys.notebook_ref(application_id, notebook_id)
        with self.redis.pipeline() as pipe:
            pipe.hset(key, str(gap), count)
            pipe.expire(key, self.ttl)
            pipe.zadd(keys.unseen_notebooks(), {ref: int(time.time() * 1000)})
            pipe.expire(keys.unseen_notebooks(), self.ttl)
            pipe.execute()
        log.warning(
            "%s",
            message(self.count(application_id, notebook_id), notebook_id),
            extra={"application": application_id, "notebook": notebook_id, "unseen": count},
        )

    def count(self, application_id: str, notebook_id: str) -> int:
        """The notebook's bound: the sum over its gaps."""
        gaps = cast(
            list[str], self.redis.hvals(keys.unseen_executions(application_id, notebook_id))
        )
        return sum(int(value) for value in gaps)

    def warnings(self, application_id: str, notebook_id: str, name: str | None) -> list[str]:
        """The warning about the notebook, if any, naming it by `name` when known."""
        count = self.count(application_id, notebook_id)
        return [message(count, name or notebook_id)] if count else []

    def all_warnings(self, names: Mapping[str, str]) -> list[str]:
        """The warnings of every notebook, most recent first; `names`: notebook_ref -> name."""
        refs = cast(list[str], self.redis.zrevrange(keys.unseen_notebooks(), 0, -1))
        with self.redis.pipeline() as pipe:
            for ref in refs:
                pipe.hvals(keys.unseen_executions(*keys.split_notebook_ref(ref)))
            gaps = pipe.execute()
        totals = [sum(int(value) for value in values) for values in gaps]
        return [
            message(total, names.get(ref) or keys.split_notebook_ref(ref)[1])
            for ref, total in zip(refs, totals, strict=True)
            if total
        ]


def message(count: int, notebook: str) -> str:
    return f"up to {count} executions of notebook {notebook} may not have been seen"
