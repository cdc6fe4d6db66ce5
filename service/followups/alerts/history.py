"""A notebook's recent record, for alert messages: failures in a row and the last success.

Updated once per terminal execution (an execution seen twice is counted once), in one Lua call so
that concurrent syncs of different notebooks and repeated deliveries of one transition agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import cast

import redis as redis_lib

from service import defaults, keys

# KEYS: 1 history hash, 2 seen zset. ARGV: execution id, status, finished (ISO), score, ttl.
_RECORD = """
if redis.call('ZADD', KEYS[2], 'NX', ARGV[4], ARGV[1]) == 0 then return 0 end
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -(tonumber(ARGV[6]) + 1))
if ARGV[2] == 'completed' then
  redis.call('HSET', KEYS[1], 'streak', 0, 'last_success_at', ARGV[3], 'last_success_id', ARGV[1])
else
  redis.call('HINCRBY', KEYS[1], 'streak', 1)
end
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('EXPIRE', KEYS[2], ARGV[5])
return 1
"""


@dataclass(frozen=True)
class History:
    consecutive_failures: int
    last_success_at: datetime | None
    last_success_execution_id: str | None


class NotebookHistory:
    def __init__(self, redis: redis_lib.Redis, *, ttl: int) -> None:
        self.redis = redis
        self.ttl = ttl
        self._record = redis.register_script(_RECORD)

    def record(
        self,
        application_id: str,
        notebook_id: str,
        execution_id: str,
        status: str,
        finished_at: str,
        score: float,
    ) -> bool:
        """Count one terminal execution; False when it was counted before."""
        return bool(
            self._record(
                keys=[
                    keys.notebook_history(application_id, notebook_id),
                    keys.notebook_history_seen(application_id, notebook_id),
                ],
                args=[
                    execution_id,
                    status,
                    finished_at or "",
                    score,
                    self.ttl,
                    defaults.HISTORY_SEEN_KEPT,
                ],
            )
        )

    def get(self, application_id: str, notebook_id: str) -> History:
        data = cast(
            dict[str, str], self.redis.hgetall(keys.notebook_history(application_id, notebook_id))
        )
        last = data.get("last_success_at") or None
        return History(
            int(data.get("streak", 0)),
            datetime.fromisoformat(last.replace("Z", "+00:00")) if last else None,
            data.get("last_success_id") or None,
        )
