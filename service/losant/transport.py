"""The transport policy of the Losant client: timeouts, pooling and retries, in one adapter.

Call sites never retry or sleep; they send once through the session and get either the final
answer or the final failure. Whether a request may be sent again is decided per route by the
`repeatable` predicate the client passes in, so a request that could do something twice (execute)
goes through the same adapter but is never repeated.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import MaxRetryError, NewConnectionError

from service.losant.errors import parse_retry_after

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 502, 503, 504})
RETRY_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter; a `Retry-After` from the server wins, both capped."""

    max_retries: int
    backoff_base: float
    backoff_max: float
    deadline: float  # seconds after the first attempt; no retry starts later

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number `retry` (0 for the first retry)."""
        if retry_after is not None:
            return min(retry_after, self.backoff_max)
        return random.uniform(0, min(self.backoff_max, self.backoff_base * 2**retry))


class LosantAdapter(HTTPAdapter):
    """An HTTPAdapter that applies default timeouts and repeats failed requests that are safe
    to repeat: on connection errors, timeouts, answers cut off midway and the statuses in
    RETRY_STATUSES.

    urllib3's own retries stay off (the HTTPAdapter default), so this loop is the only one.
    A request that is still failing after the last retry ends as the failure itself: the
    exception, or the last error answer (with its body) for the caller to map.
    """

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        timeout: tuple[float, float],
        repeatable: Callable[[str, str], bool],
        pool_size: int,
    ) -> None:
        super().__init__(pool_connections=1, pool_maxsize=pool_size)
        self.policy = policy
        self.timeout = timeout
        self.repeatable = repeatable

    def send(  # type: ignore[override]
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float, float] | None = None,
        verify: bool | str = True,
        cert: str | tuple[str, str] | None = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        path = urlsplit(request.url or "").path
        method = request.method or "GET"
        retries = self.policy.max_retries if self.repeatable(method, path) else 0
        started = time.monotonic()
        retry = 0
        while True:
            try:
                response = super().send(
                    request, stream, timeout or self.timeout, verify, cert, proxies
                )
                if not stream:
                    response.content  # noqa: B018 - an answer cut off midway is a failure too
            except RETRY_ERRORS as exc:
                wait = self.policy.delay(retry)
                if isinstance(exc, requests.exceptions.SSLError) or not self._may_retry(
                    retry, retries, started, wait
                ):
                    raise
                reason = type(exc).__name__
            else:
                if response.status_code not in RETRY_STATUSES:
                    return response
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                wait = self.policy.delay(retry, retry_after)
                if not self._may_retry(retry, retries, started, wait):
                    return response
                reason = f"HTTP {response.status_code}"
                response.close()
            retry += 1
            log.warning(
                "Losant %s %s failed (%s); retry %d of %d in %.2f s",
                method,
                path,
                reason,
                retry,
                retries,
                wait,
            )
            time.sleep(wait)

    def _may_retry(self, retry: int, retries: int, started: float, wait: float) -> bool:
        """Retries are bounded by count and by time: none starts after the policy's deadline."""
        return retry < retries and time.monotonic() - started + wait <= self.policy.deadline


def nothing_sent(exc: requests.RequestException) -> bool:
    """Whether a request failed before any of it left this host (refused, DNS, connect timeout).

    Such a failure is safe even for a non-idempotent request; any later failure (reset, closed
    connection, read timeout) may have happened after Losant acted on the request.
    """
    if isinstance(exc, requests.ConnectTimeout):
        return True
    cause = exc.args[0] if exc.args else None
    return isinstance(cause, MaxRetryError) and isinstance(cause.reason, NewConnectionError)
