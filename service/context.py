"""What the domain works with, built once per process from the settings: Redis connections, the
store, the sync state and the Losant client.

The web app keeps one Context (in `app.extensions`); a worker or scheduler process installs one
with `install()`, and RQ jobs reach it through `current()`, since RQ calls job functions with
their arguments only.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

import redis as redis_lib

from service.config import Settings
from service.store import Store
from service.syncstate import SyncState

if TYPE_CHECKING:
    from service.losant import LosantClient
    from service.pipelines.followups import Followups

REDIS_SOCKET_TIMEOUT = 10.0  # seconds; a Redis that does not answer is an outage, not a wait
REDIS_CONNECT_TIMEOUT = 3.0


@dataclass
class Context:
    settings: Settings
    redis: redis_lib.Redis  # decodes responses: for nbrelay's own keys
    rq_redis: redis_lib.Redis  # raw bytes: what RQ requires
    _losant: LosantClient | None = field(default=None, repr=False)
    _losant_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Context:
        url = settings.require("NBRELAY_REDIS_URL").redis_url or ""
        options = {
            "socket_timeout": REDIS_SOCKET_TIMEOUT,
            "socket_connect_timeout": REDIS_CONNECT_TIMEOUT,
            "health_check_interval": 30,
        }
        return cls(
            settings,
            redis_lib.Redis.from_url(url, decode_responses=True, **options),
            redis_lib.Redis.from_url(url, **options),
        )

    @cached_property
    def store(self) -> Store:
        return Store(self.redis, self.settings.retention_days)

    @cached_property
    def syncs(self) -> SyncState:
        return SyncState(
            self.redis,
            lease_seconds=self.settings.sync_lease,
            ttl=self.settings.retention_days * 24 * 3600,
        )

    @cached_property
    def followups(self) -> Followups:
        """Pipelines, rules, actions and alerts (built on first use)."""
        from service.pipelines.wiring import build

        return build(self)

    @property
    def losant(self) -> LosantClient:
        """The Losant client (built on first use: the web app needs it only to start runs)."""
        with self._losant_lock:
            if self._losant is None:
                from service.losant_metrics import instrumented_client

                self._losant = instrumented_client(self.settings)
            return self._losant

    def close(self) -> None:
        if self._losant is not None:
            self._losant.close()
        self.redis.close()
        self.rq_redis.close()


_current: Context | None = None


def install(ctx: Context | None) -> None:
    """Make `ctx` the Context of this process (None forgets it)."""
    global _current
    _current = ctx


def current() -> Context:
    """This process's Context, built from the environment on first use."""
    global _current
    if _current is None:
        _current = Context.from_settings(Settings.from_env())
    return _current
