"""The components of the configured deployment, for one CLI command.

A dependency that does not answer while a command uses them (Redis refusing or timing out,
Losant out of reach) ends the command with one line naming it, its password masked, and what to
check; `nbrelay` prints it and exits with status 1. Commands that connect here need not handle
it themselves.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import redis as redis_lib

from service.config import Settings, masked_url
from service.errors import LOSANT_FIX, REDIS_FIX, Unreachable
from service.losant import OutcomeUnknown, Unavailable

if TYPE_CHECKING:  # imported when a command runs: it brings in the metrics
    from service.composition import Components


@contextmanager
def connect(settings: Settings | None = None) -> Iterator[Components]:
    """Connect to the deployment's Redis (and Losant, when needed) for the command's duration.

    `settings` default to the environment's."""
    from service.composition import Components

    settings = settings or Settings.from_env()
    with explained(settings):
        components = Components.from_settings(settings)
        try:
            yield components
        finally:
            components.close()


@contextmanager
def explained(settings: Settings) -> Iterator[None]:
    """Turn Redis or Losant not answering into Unreachable, which names it and what to check."""
    try:
        yield
    except (redis_lib.ConnectionError, redis_lib.TimeoutError) as exc:
        raise Unreachable(f"Redis at {settings.shown_redis_url}", str(exc), REDIS_FIX) from None
    except (Unavailable, OutcomeUnknown) as exc:
        if exc.status is not None:  # Losant answered, with an error of its own
            raise
        where = f"Losant at {masked_url(settings.losant_api_url)}"
        raise Unreachable(where, f"{exc.request}: {exc.message}", LOSANT_FIX) from None


def require_redis(settings: Settings) -> None:
    """Stop at once when Redis does not answer: a long-running process started against the
    wrong NBRELAY_REDIS_URL, or before Redis, says so in one line instead of failing later."""
    with connect(settings) as components:
        components.redis.ping()
