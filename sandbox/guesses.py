"""What the sandbox does where Losant documents nothing: its guesses, switchable while it runs.

Each guess has a default (`sandbox/defaults.py`, `nbrelay sandbox` flags) and the other plausible
behaviours. `GET /_sandbox/guesses` shows them and `PATCH /_sandbox/guesses` switches any of them
for the whole running sandbox; they are kept in memory, so a restart goes back to the flags.

- `logsSince`: which executions `GET …/logs?since=T` lists. `queued`: those queued at or after T;
  `queuedAfter`: queued strictly after T; `started`: those that started at or after T (runs still
  queued are left out); `ended`: those that reached a terminal status at or after T (runs not
  finished are left out).
- `callbackBody`: what a run's callback POSTs. `triggerData`: `{"success", "notebook",
  "execution"}`, the `data` of a Notebook Trigger payload; `triggerPayload`: a whole Notebook
  Trigger payload, that object under `data` with `time`, `applicationId`, `applicationName`,
  `triggerId` and `triggerType` beside it; `execution`: the bare execution record; `empty`: no
  body at all.
- `callbackAttempts` (1: no retries) and `callbackBackoffSeconds` (doubled after every failed
  attempt): how callbacks are retried on connection errors, timeouts, 429 and 5xx.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, replace
from typing import Any

from sandbox import defaults

LOGS_SINCE = ("queued", "queuedAfter", "started", "ended")
CALLBACK_BODIES = ("triggerData", "triggerPayload", "execution", "empty")

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "logsSince": {"type": "string", "enum": list(LOGS_SINCE)},
        "callbackBody": {"type": "string", "enum": list(CALLBACK_BODIES)},
        "callbackAttempts": {
            "type": "integer",
            "minimum": 1,
            "maximum": defaults.CALLBACK_MAX_ATTEMPTS,
        },
        "callbackBackoffSeconds": {
            "type": "number",
            "minimum": 0,
            "maximum": defaults.CALLBACK_MAX_BACKOFF,
        },
    },
    "additionalProperties": False,
}


@dataclass(frozen=True)
class Guesses:
    logsSince: str = defaults.LOGS_SINCE  # noqa: N815 - the field names are the JSON names
    callbackBody: str = defaults.CALLBACK_BODY  # noqa: N815
    callbackAttempts: int = defaults.CALLBACK_ATTEMPTS  # noqa: N815
    callbackBackoffSeconds: float = defaults.CALLBACK_BACKOFF  # noqa: N815

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class GuessSwitch:
    """The running sandbox's guesses; read by request threads, callback senders and the API."""

    def __init__(self, initial: Guesses) -> None:
        self._lock = threading.Lock()
        self._current = initial

    def current(self) -> Guesses:
        with self._lock:
            return self._current

    def update(self, changes: dict[str, Any]) -> Guesses:
        """Switch the guesses named in `changes` (checked against SCHEMA by the caller)."""
        with self._lock:
            self._current = replace(self._current, **changes)
            return self._current
