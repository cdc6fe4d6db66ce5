"""The largest `limit` Losant's `GET …/logs` serves, as syncs discover it.

Losant documents `limit` but no maximum. A Losant that caps it may answer a larger `limit` with
a 400 naming the limit, or serve fewer runs than asked without saying so. Syncs read the number
from such a 400 (or halve `limit` when it has none), and take a page that stops short of the
notebook's cursor as served at the cap. The cap is remembered per application for
`LOGS_CAP_TTL`, so later syncs ask for it directly; after that they probe again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import redis as redis_lib

from service import defaults, keys, metrics
from service.losant import LosantClient, LosantError
from service.losant.models import Execution

_LIMIT_NUMBER = re.compile(r"\blimit\b\D*?(\d+)", re.IGNORECASE)


def cap_from_error(exc: LosantError, asked: int) -> int | None:
    """The cap a 400 answering `limit=asked` reveals: the number it names below `asked`, else
    half of `asked`. None when the error is not a 400 about `limit` (or `asked` is 1)."""
    if exc.status != 400 or "limit" not in exc.message.lower() or asked <= 1:
        return None
    named = [int(n) for n in _LIMIT_NUMBER.findall(exc.message)]
    below = [n for n in named if 1 <= n < asked]
    return max(below) if below else asked // 2


@dataclass(frozen=True)
class Page:
    """One `/logs` answer: the executions, the `limit` that was served, and how many requests
    it took (a 400 about `limit` costs one more)."""

    executions: list[Execution]
    limit: int
    calls: int


class LogsCaps:
    """Discovered caps in Redis (`redis` decodes responses), one per application."""

    def __init__(self, redis: redis_lib.Redis) -> None:
        self.redis = redis

    def get(self, application_id: str) -> int | None:
        value = self.redis.get(keys.logs_limit_cap(application_id))
        return int(value) if value else None

    def remember(self, application_id: str, cap: int, how: str) -> None:
        """Record `cap`; `how` is "rejected" (a 400) or "short" (a page cut short)."""
        self.redis.set(keys.logs_limit_cap(application_id), cap, ex=defaults.LOGS_CAP_TTL)
        metrics.LOGS_CAP_DISCOVERED.labels(how).inc()

    def read(
        self,
        client: LosantClient,
        application_id: str,
        notebook_id: str,
        *,
        limit: int,
        since: int | None = None,
    ) -> Page:
        """`GET …/logs` asking for `limit`, or the known cap when lower. A 400 about `limit`
        reveals the cap: it is remembered and asked for instead."""
        limit = min(limit, self.get(application_id) or limit)
        calls = 0
        while True:
            calls += 1
            try:
                executions = client.logs(application_id, notebook_id, limit=limit, since=since)
            except LosantError as exc:
                cap = cap_from_error(exc, limit)
                if cap is None:
                    raise
                self.remember(application_id, cap, "rejected")
                limit = cap
                continue
            return Page(executions, limit, calls)
