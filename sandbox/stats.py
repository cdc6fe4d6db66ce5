"""Request and callback counts per notebook (`GET /_sandbox/.../stats`), kept in memory."""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from sandbox import defaults


class Stats:
    """Per notebook: requests by Losant action name, callbacks sent, `execute` answers cut
    (`lostExecuteAnswers`) and the journal of the patches applied, in memory.

    The API counts only requests to notebooks that exist, and at most `limit` notebooks are
    kept: counting for one more forgets the one counted least recently. The journal keeps at
    most `patch_bodies` distinct bodies per notebook: one more forgets the one first seen."""

    def __init__(
        self,
        limit: int = defaults.STATS_NOTEBOOKS,
        patch_bodies: int = defaults.STATS_PATCH_BODIES,
    ) -> None:
        self._lock = threading.Lock()
        self._limit = limit
        self._patch_bodies = patch_bodies
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

    def count_execute_answer_lost(self, notebook_id: str) -> None:
        with self._lock:
            self._counts(notebook_id).execute_answers_lost += 1

    def count_patch(self, notebook_id: str, body: Any) -> None:
        """A notebook patch the sandbox applied: its JSON body, grouped with identical ones (the
        same JSON, whatever the order of its keys), the first one's text kept."""
        key = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        with self._lock:
            patches = self._counts(notebook_id).patches
            entry = patches.get(key)
            if entry is None:
                patches[key] = entry = _Patch(json.loads(json.dumps(body)))
                while len(patches) > self._patch_bodies:
                    patches.popitem(last=False)
            entry.applied += 1

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
                "executeAnswersLost": counts.execute_answers_lost,
                "patches": [
                    {"body": patch.body, "applied": patch.applied}
                    for patch in counts.patches.values()
                ],
            }

    def _counts(self, notebook_id: str) -> _Counts:
        """The notebook's counts, made the most recently used; the caller holds the lock."""
        counts = self._by_notebook.pop(notebook_id, None) or _Counts()
        self._by_notebook[notebook_id] = counts
        while len(self._by_notebook) > self._limit:
            self._by_notebook.popitem(last=False)
        return counts


@dataclass
class _Patch:
    body: Any  # a copy of the first body sent, never changed afterwards
    applied: int = 0


@dataclass
class _Counts:
    requests: dict[str, int] = field(default_factory=dict)
    callbacks: dict[str, int] = field(default_factory=dict)
    execute_answers_lost: int = 0
    # canonical JSON of the body → its entry, in the order the bodies were first applied
    patches: OrderedDict[str, _Patch] = field(default_factory=OrderedDict)
