"""The `nbrelay scheduler` process: every few seconds, the reconciler's pass and the follow-ups'.

Only one scheduler does this at a time (a leader key with a TTL), so extra replicas are spares
that take over within a few intervals when the leader dies, or at once when it stops cleanly.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid

from service import defaults, keys
from service.composition import Components

log = logging.getLogger(__name__)

# KEYS: 1 leader. ARGV: my id, ttl ms.
_LEAD = """
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""

# KEYS: 1 leader. ARGV: my id.
_RESIGN = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class Scheduler:
    """The loop of one scheduler process: leadership, then the passes that are due."""

    def __init__(self, components: Components, *, name: str | None = None) -> None:
        self.components = components
        # Host and pid, so an operator (and the fault soak) can tell which process holds the
        # lead; the random part keeps two schedulers of one process apart.
        host, pid, suffix = socket.gethostname(), os.getpid(), uuid.uuid4().hex[:6]
        self.name = name or f"scheduler-{host}-{pid}-{suffix}"
        settings = components.settings
        self.interval = min(
            settings.reconcile_interval, settings.poll_interval, settings.poll_busy_interval
        )
        self._lead = components.redis.register_script(_LEAD)
        self._resign = components.redis.register_script(_RESIGN)

    def is_leader(self) -> bool:
        ttl_ms = int(self.interval * defaults.SCHEDULER_LEADER_TTL * 1000) + 1000
        return bool(self._lead(keys=[keys.scheduler_leader()], args=[self.name, ttl_ms]))

    def tick(self, now: float | None = None) -> bool:
        """One pass; False when another scheduler leads."""
        moment = time.time() if now is None else now
        if not self.is_leader():
            return False
        self.components.reconciler.tick(moment)
        self.components.followups.tick()
        return True

    def run(self, stop: threading.Event) -> None:
        """Tick every interval until `stop` is set. A failing pass is logged, not fatal."""
        log.info("scheduler %s started (every %.3gs)", self.name, self.interval)
        while True:
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - Redis or Losant down: try again next tick
                log.exception("scheduler pass failed")
            if stop.wait(self.interval):
                break
        self.resign()
        log.info("scheduler %s stopped", self.name)

    def resign(self) -> None:
        """Give up leadership, so a spare scheduler takes over without waiting for the TTL."""
        try:
            self._resign(keys=[keys.scheduler_leader()], args=[self.name])
        except Exception:  # noqa: BLE001 - shutting down anyway; the TTL ends the lead
            log.warning("could not resign as scheduler leader", exc_info=True)
