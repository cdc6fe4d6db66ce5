"""Brute-force brake for the dashboard's sign-in: failed attempts are counted per client address
in Redis for `SIGN_IN_FAILURE_WINDOW` seconds (shared by every worker and replica); at
`SIGN_IN_MAX_FAILURES` that client is refused until the window ends."""

from __future__ import annotations

import redis as redis_lib

from service import defaults, keys


class SignInThrottle:
    def __init__(
        self,
        redis: redis_lib.Redis,
        max_failures: int = defaults.SIGN_IN_MAX_FAILURES,
        window: int = defaults.SIGN_IN_FAILURE_WINDOW,
    ) -> None:
        self.redis = redis
        self.max_failures = max_failures
        self.window = window

    def retry_after(self, client: str) -> int | None:
        """Seconds until `client` may try again, or None if it may try now."""
        key = keys.sign_in_failures(client)
        if int(self.redis.get(key) or 0) < self.max_failures:
            return None
        return max(1, int(self.redis.ttl(key)))

    def failed(self, client: str) -> None:
        """Count a failed attempt; the window starts with the first failure."""
        key = keys.sign_in_failures(client)
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(key, 0, ex=self.window, nx=True)
            pipe.incr(key)
            pipe.execute()

    def succeeded(self, client: str) -> None:
        self.redis.delete(keys.sign_in_failures(client))
