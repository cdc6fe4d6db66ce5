"""Moments as nbrelay writes and reads them: UTC, ISO 8601, or milliseconds since the epoch."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

_DIGITS = re.compile(r"-?[0-9]+")
_EPOCH = datetime.fromtimestamp(0, UTC)
_MS = timedelta(milliseconds=1)
_EARLIEST_MS = (datetime.min.replace(tzinfo=UTC) - _EPOCH) // _MS
_LATEST_MS = (datetime.max.replace(tzinfo=UTC) - _EPOCH) // _MS


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


def parse_instant(value: str | int) -> int:
    """Milliseconds since epoch from a number of ms (an int, or its decimal digits) or an ISO
    8601 date-time (UTC if no zone), within the years 1 to 9999; ValueError for anything else."""
    if isinstance(value, int):
        milliseconds = value
    elif _DIGITS.fullmatch(text := value.strip()):
        # more digits than any moment of those years has, without converting them all
        milliseconds = int(text) if len(text) <= 20 else _LATEST_MS + 1
    elif (parsed := _iso_ms(text)) is not None:
        milliseconds = parsed
    else:
        raise ValueError(
            f"{value[:100]!r} is neither milliseconds since epoch nor an ISO 8601 date-time"
        )
    if not _EARLIEST_MS <= milliseconds <= _LATEST_MS:
        raise ValueError(f"{str(value)[:100]!r} is outside the years 1 to 9999")
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


def duration_text(seconds: float) -> str:
    """`0.4 s`, `12 s`, `3 min 5 s`, `2 h 4 min`."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"
