"""Request and callback counts per notebook (`GET /_sandbox/.../stats`), kept in memory."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from sandbox import defaults


class Stats:
    """Per notebook: requests by Losant action name and callbacks sent, in memory.

    The API counts only requests to notebooks that exist, and at most `limit` notebooks are
    kept: counting for one more forgets the one counted least recently."""

    def __init__(self, limit: int = defaults.STATS_NOTEBOOKS) -> None:
        self._lock = threading.Lock()
        self._limit = limit
        self._by_notebook: OrderedDict[str, _Counts] = OrderedDict()

    def count_request(self, notebook_id: str, action: str) -> None:
        with self._lock:
            counts = self._counts(notebook_id).requests
            counts[action] = counts.get(action, 0) + 1

    def count_callback(self, notebook_id: str, outcome: str) -> None:
        """`outcome`: `sent` (the receiver answered), `failed` (gave up) or `dropped` (scripted)."""
        with self._lock:
            counts = self._counts(notebook_id).callbacks
            counts[outcome] = counts.get(outcome, 0) + 1

    def forget(self, notebook_id: str) -> None:
        with self._lock:
            self._by_notebook.pop(notebook_id, None)

    def of(self, notebook_id: str) -> dict[str, Any]:
        with self._lock:
            counts = self._by_notebook.get(notebook_id) or _Counts()
            return {
                "requests": dict(counts.requests),
                "callbacksSent": counts.callbacks.get("sent", 0),
                "callbacksFailed": counts.callbacks.get("failed", 0),
                "callbacksDropped": counts.callbacks.get("dropped", 0),
            }

    def _counts(self, notebook_id: str) -> _Counts:
        """The notebook's counts, made the most recently used; the caller holds the lock."""
        counts = self._by_notebook.pop(notebook_id, None) or _Counts()
        self._by_notebook[notebook_id] = counts
        while len(self._by_notebook) > self._limit:
            self._by_notebook.popitem(last=False)
        return counts


@dataclass
class _Counts:
    requests: dict[str, int] = field(default_factory=dict)
    callbacks: dict[str, int] = field(default_factory=dict)
