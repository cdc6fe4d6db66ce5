"""The cap on `limit` of `GET …/logs`: a guess, switchable while the sandbox runs.

Losant documents `limit` ("Max log entries to return", default 1) but no largest value. The
sandbox caps it at `LOGS_LIMIT_CAP` and answers a larger `limit` with a 400 `Validation` error
naming the cap (`reject`), or serves at most the cap without saying so (`silent`). Both, and the
cap itself, are guesses: set them with `nbrelay sandbox --logs-limit-cap/--logs-above-cap` or
`PUT /_sandbox/logs-limit` to check that a client survives the other plausible Losants.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, replace
from typing import Any

from sandbox.errors import ValidationFailed

ABOVE_CAP = ("reject", "silent")
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "cap": {"type": "integer", "minimum": 1, "maximum": 1_000_000},
        "aboveCap": {"type": "string", "enum": list(ABOVE_CAP)},
    },
    "additionalProperties": False,
}


@dataclass(frozen=True)
class LogsLimit:
    cap: int
    aboveCap: str  # noqa: N815 - the field names are the JSON names

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def apply(self, limit: int) -> int:
        """The number of executions to serve for `limit`, or a 400 naming the cap."""
        if limit <= self.cap:
            return limit
        if self.aboveCap == "reject":
            raise ValidationFailed(f"query.limit: must be at most {self.cap}")
        return self.cap


class LogsLimitSetting:
    """The sandbox's current `LogsLimit`, changed through `/_sandbox/logs-limit`."""

    def __init__(self, initial: LogsLimit) -> None:
        self._lock = threading.Lock()
        self._current = initial

    def get(self) -> LogsLimit:
        with self._lock:
            return self._current

    def update(self, changes: dict[str, Any]) -> LogsLimit:
        with self._lock:
            self._current = replace(self._current, **changes)
            return self._current
