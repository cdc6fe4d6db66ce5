"""Delivering one message through one channel, retrying transient failures with exponential
backoff bounded by a number of attempts and by elapsed time (the Healthchecks rule), so a dead
endpoint costs a bounded delay and a permanent failure costs one attempt."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from service import defaults
from service.followups.channels.base import Channel, ChannelError
from service.followups.messages import AlertMessage


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = defaults.CHANNEL_MAX_ATTEMPTS
    max_elapsed: float = defaults.CHANNEL_MAX_ELAPSED
    backoff_base: float = defaults.CHANNEL_BACKOFF_BASE
    backoff_max: float = defaults.CHANNEL_BACKOFF_MAX

    def wait(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based): the exponential
        delay, half of it fixed and half random (so the retries of many messages spread out,
        yet always span the outage they wait out), or the receiver's Retry-After when that is
        longer; capped either way."""
        delay = min(self.backoff_base * 2 ** (attempt - 1), self.backoff_max)
        wait = delay / 2 + random.uniform(0, delay / 2)
        return min(max(wait, retry_after or 0.0), self.backoff_max)


DEFAULT_CHANNEL_POLICY = RetryPolicy()
ONCE = RetryPolicy(max_attempts=1)  # test notifications: a person is watching, tell them now


@dataclass(frozen=True)
class DeliveryResult:
    """How a delivery ended. `permanent` also covers a transient failure that ran out of
    attempts or time: either way nobody will try again."""

    delivered: bool
    attempts: int
    error: str | None = None
    permanent: bool = False


def deliver(
    channel: Channel,
    message: AlertMessage,
    policy: RetryPolicy = DEFAULT_CHANNEL_POLICY,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> DeliveryResult:
    start = clock()
    attempt = 0
    while True:
        attempt += 1
        try:
            channel.notify(message)
            return DeliveryResult(True, attempt)
        except ChannelError as exc:
            wait = policy.wait(attempt, exc.retry_after)
            out_of_time = clock() - start + wait > policy.max_elapsed
            if exc.permanent or attempt >= policy.max_attempts or out_of_time:
                return DeliveryResult(False, attempt, exc.message, permanent=True)
            sleep(wait)
