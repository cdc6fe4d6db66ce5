"""Notebook minutes used this month, from Losant's `notebookMinuteCounts`, kept in Redis.

A page that lists every notebook and refreshes itself every few seconds must neither send a
request per notebook per view nor wait on a Losant that is slow or down. So each notebook's
count is kept for NOTEBOOK_MINUTES_TTL; Losant is asked with short timeouts and no retries;
once it could not be reached nobody asks for MINUTES_UNAVAILABLE_TTL; and one look spends at
most MINUTES_FETCH_BUDGET seconds asking (the counts it did not get come with later looks).
A count that could not be had is None.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import cast

import redis as redis_lib

from service import defaults, keys
from service.losant import LosantClient, LosantError, RateLimited, Unavailable

log = logging.getLogger(__name__)

Notebook = tuple[str, str]  # (application id, notebook id)


def month_start(now: float) -> datetime:
    """Midnight UTC of the first day of `now`'s month: where Losant's usage period starts."""
    return datetime.fromtimestamp(now, UTC).replace(
        day=1, hour=0, minute=0, second=0, microsecond=0
    )


class MinuteUsage:
    """`losant`: a client with short timeouts and no retries, None when none is configured."""

    def __init__(
        self,
        redis: redis_lib.Redis,
        losant: LosantClient | None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.redis = redis
        self.losant = losant
        self.clock = clock

    def this_month(self, notebooks: Iterable[Notebook]) -> dict[Notebook, int | None]:
        """Minutes each notebook used this month (UTC), None where Losant did not say."""
        wanted = list(notebooks)
        now = self.clock()
        start = month_start(now)
        month = start.strftime("%Y-%m")
        kept = cast(
            list[str | None],
            self.redis.mget([keys.notebook_minutes(*n) for n in wanted]) if wanted else [],
        )
        deadline = time.monotonic() + defaults.MINUTES_FETCH_BUDGET
        down = self.losant is None or bool(self.redis.exists(keys.minutes_unavailable()))
        found: dict[Notebook, int | None] = {}
        for notebook, raw in zip(wanted, kept, strict=True):
            entry = json.loads(raw) if raw else None
            if entry is not None and entry.get("month") == month:
                found[notebook] = entry.get("minutes")
            elif down or time.monotonic() > deadline:
                found[notebook] = None
            else:
                found[notebook], down = self._ask(notebook, start, now, month)
        return found

    def close(self) -> None:
        if self.losant is not None:
            self.losant.close()

    def _ask(
        self, notebook: Notebook, start: datetime, now: float, month: str
    ) -> tuple[int | None, bool]:
        """One notebook's minutes from Losant, kept; and whether Losant is now taken for down."""
        assert self.losant is not None
        application_id, notebook_id = notebook
        key = keys.notebook_minutes(application_id, notebook_id)
        try:
            counts = self.losant.notebook_minute_counts(
                application_id, notebook_id, start=start, end=int(now * 1000)
            )
        except (Unavailable, RateLimited) as exc:
            log.warning("minute counts unavailable: %s", exc)
            self.redis.set(keys.minutes_unavailable(), "1", ex=defaults.MINUTES_UNAVAILABLE_TTL)
            return None, True
        except LosantError as exc:
            log.warning("no minute counts for notebook %s: %s", notebook_id, exc)
            entry = json.dumps({"month": month, "minutes": None})
            self.redis.set(key, entry, ex=defaults.MINUTES_UNAVAILABLE_TTL)
            return None, False
        minutes = sum(day.minutes or 0 for day in counts.counts)
        entry = json.dumps({"month": month, "minutes": minutes})
        self.redis.set(key, entry, ex=defaults.NOTEBOOK_MINUTES_TTL)
        return minutes, False
