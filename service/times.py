"""Moments as nbrelay writes and reads them: UTC, ISO 8601, or milliseconds since the epoch."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any

_DIGITS = re.compile(r"^-?\d+$")


def now_iso(now: float | None = None) -> str:
    """`now` (default: the current time) the way Losant writes its dates: ms and a `Z`."""
    moment = datetime.fromtimestamp(time.time() if now is None else now, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso(moment: float) -> str:
    """Seconds since the epoch as ISO 8601 with milliseconds and `+00:00` (runs and actions)."""
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds")


def parse_time_ms(value: Any) -> int | None:
    """Milliseconds since epoch of a Losant date-time string (or a number), None if absent."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)):
        return int(value)
    return _iso_ms(str(value))


def parse_instant(text: str) -> int:
    """Milliseconds since epoch from a number of ms or an ISO 8601 date-time (UTC if no zone);
    ValueError for anything else."""
    value = text.strip()
    if _DIGITS.match(value):
        return int(value)
    milliseconds = _iso_ms(value)
    if milliseconds is None:
        raise ValueError(f"{text!r} is neither milliseconds since epoch nor an ISO 8601 date-time")
    return milliseconds


def _iso_ms(text: str) -> int | None:
    """Milliseconds since epoch of an ISO 8601 date-time (UTC when it names no zone)."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)
