"""Identifiers in the forms Losant uses: 24-hex ObjectIds and short URL-safe job ids."""

from __future__ import annotations

import itertools
import os
import re
import secrets
import threading
import time

OBJECT_ID = re.compile(r"[A-Fa-f0-9]{24}")

_counter = itertools.count(int.from_bytes(os.urandom(3), "big"))
_counter_lock = threading.Lock()
_process_bytes = os.urandom(5)


def new_object_id() -> str:
    """A MongoDB-style ObjectId: seconds, a per-process random part and a counter, so ids made
    later sort after ids made earlier (the tie-breaker of `/logs` ordering)."""
    with _counter_lock:
        count = next(_counter) & 0xFFFFFF
    return (int(time.time()).to_bytes(4, "big") + _process_bytes + count.to_bytes(3, "big")).hex()


def is_object_id(value: str) -> bool:
    return OBJECT_ID.fullmatch(value) is not None


def new_job_id() -> str:
    """20 URL-safe characters: fits `jobEnqueuedResult.jobId` (at most 21)."""
    return secrets.token_urlsafe(15)
