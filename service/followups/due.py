"""Due schedules in Redis: a sorted set of members scored by the time they are owed.

Taking what is due pushes each taken member to a later score in the same atomic step, so two
schedulers never take the same member at once, and a member whose job never ran comes due again.
"""

from __future__ import annotations

from typing import cast

import redis as redis_lib

# KEYS: 1 due zset. ARGV: now, pushed score, limit.
_TAKE_DUE = """
local items = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
for _, member in ipairs(items) do
  redis.call('ZADD', KEYS[1], ARGV[2], member)
end
return items
"""


class DueSchedule:
    """One due sorted set (`key`)."""

    def __init__(self, redis: redis_lib.Redis, key: str) -> None:
        self.key = key
        self._take = redis.register_script(_TAKE_DUE)

    def take(self, now: float, hold_until: float, limit: int) -> list[str]:
        """Members due at `now` (at most `limit`), each pushed to `hold_until`."""
        members = self._take(keys=[self.key], args=[now, hold_until, limit])
        return cast(list[str], members)
