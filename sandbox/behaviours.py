"""Scripted behaviours: per notebook, what the sandbox pretends instead of running a kernel.

Set through `PUT /_sandbox/applications/{a}/notebooks/{n}/behaviour` and kept in memory (a
restart forgets them). With `status` set, runs of the notebook are scripted: no kernel starts,
the run takes `durationSeconds` and ends in `status`. The other fields inject faults into the
notebook's API traffic and callbacks whether or not runs are scripted: `serverErrors` (500) and
`rateLimited` (429 with `Retry-After: retryAfterSeconds`) refuse a share of the requests before
they do anything; `lostExecuteAnswers` applies a share of `execute` requests in full and then
cuts the connection instead of answering, so the caller cannot know the run was queued.
"""

from __future__ import annotations

import math
import random
import threading
from dataclasses import asdict, dataclass
from typing import Any

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "status": {"type": "string", "enum": ["completed", "errored", "timeout", "canceled"]},
        "durationSeconds": {"type": "number", "minimum": 0, "maximum": 86400},
        "logsLatencySeconds": {"type": "number", "minimum": 0, "maximum": 600},
        "dropCallbacks": {"type": "number", "minimum": 0, "maximum": 1},
        "duplicateCallbacks": {"type": "number", "minimum": 0, "maximum": 1},
        "serverErrors": {"type": "number", "minimum": 0, "maximum": 1},
        "rateLimited": {"type": "number", "minimum": 0, "maximum": 1},
        "retryAfterSeconds": {"type": "number", "minimum": 0, "maximum": 3600},
        "lostExecuteAnswers": {"type": "number", "minimum": 0, "maximum": 1},
    },
    "additionalProperties": False,
}


@dataclass(frozen=True)
class Behaviour:
    status: str | None = None
    durationSeconds: float = 0.0  # noqa: N815 - the field names are the JSON names
    logsLatencySeconds: float = 0.0  # noqa: N815
    dropCallbacks: float = 0.0  # noqa: N815
    duplicateCallbacks: float = 0.0  # noqa: N815
    serverErrors: float = 0.0  # noqa: N815
    rateLimited: float = 0.0  # noqa: N815
    retryAfterSeconds: float = 1.0  # noqa: N815
    lostExecuteAnswers: float = 0.0  # noqa: N815

    @property
    def scripted(self) -> bool:
        return self.status is not None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def fails_request(self) -> bool:
        return _chance(self.serverErrors)

    def limits_request(self) -> bool:
        return _chance(self.rateLimited)

    @property
    def retry_after(self) -> int:
        """The `Retry-After` of a scripted 429: whole seconds, rounded up."""
        return math.ceil(self.retryAfterSeconds)

    def loses_execute_answer(self) -> bool:
        return _chance(self.lostExecuteAnswers)

    def callback_copies(self) -> int:
        """How many times to send one callback: 0 (dropped), 1, or 2 (duplicated)."""
        if _chance(self.dropCallbacks):
            return 0
        return 2 if _chance(self.duplicateCallbacks) else 1


REAL = Behaviour()


def _chance(share: float) -> bool:
    return share > 0 and random.random() < share


class Behaviours:
    """The behaviour of every notebook that has one; the rest behave for real."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_notebook: dict[str, Behaviour] = {}

    def get(self, notebook_id: str) -> Behaviour:
        with self._lock:
            return self._by_notebook.get(notebook_id, REAL)

    def set(self, notebook_id: str, settings: dict[str, Any]) -> Behaviour:
        behaviour = Behaviour(**settings)
        with self._lock:
            self._by_notebook[notebook_id] = behaviour
        return behaviour

    def clear(self, notebook_id: str) -> None:
        with self._lock:
            self._by_notebook.pop(notebook_id, None)
