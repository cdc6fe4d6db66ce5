"""Notifications that failed for good (a 404 from Slack, an SMTP server that refused the
recipient, a webhook that stayed down past the retries): kept, newest first, so that an operator
sees them (`GET /api/alerts`, `nbrelay alerts list`)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import redis as redis_lib

from service import defaults, keys


class FailedDeliveries:
    def __init__(
        self,
        redis: redis_lib.Redis,
        *,
        ttl: int,
        kept: int = defaults.FAILED_DELIVERIES_KEPT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.redis = redis
        self.ttl = ttl
        self.kept = kept
        self.clock = clock

    def record(
        self,
        *,
        key: str,
        channel: str,
        kind: str,
        event: str,
        alert: str | None,
        error: str | None,
        attempts: int,
    ) -> None:
        """Keep one failed notification (the action `key` through `channel`)."""
        failure = {
            "key": key,
            "channel": channel,
            "kind": kind,
            "event": event,
            "alert": alert,
            "error": error,
            "attempts": attempts,
            "at": self.clock(),
        }
        pipe = self.redis.pipeline()
        pipe.lpush(keys.deliveries_failed(), json.dumps(failure))
        pipe.ltrim(keys.deliveries_failed(), 0, self.kept - 1)
        pipe.expire(keys.deliveries_failed(), self.ttl)
        pipe.execute()

    def all(self) -> list[dict[str, Any]]:
        """The failed notifications kept, newest first."""
        return [json.loads(raw) for raw in self.redis.lrange(keys.deliveries_failed(), 0, -1)]
