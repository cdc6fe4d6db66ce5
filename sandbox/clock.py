"""Time as the Losant API writes it: UTC, ISO 8601 with milliseconds and a `Z`.

Query parameters and `relativeTo` arrive as ms since the epoch, date strings or `{"$date": ...}`;
everything is turned into an aware UTC datetime here so the rest of the sandbox never guesses.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """`2016-06-13T04:00:00.000Z`, the form of every date the Losant API returns."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def to_ms(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(milliseconds=1)


def from_ms(ms: float) -> datetime:
    """The moment `ms` milliseconds after the epoch; ValueError when it is not a real date."""
    if not math.isfinite(ms):
        raise ValueError("not a finite number")
    try:
        moment = EPOCH + timedelta(milliseconds=ms)
    except OverflowError:
        raise ValueError("out of range") from None
    if not 1 <= moment.year <= 9999:
        raise ValueError("out of range")
    return moment


def parse_date(text: str) -> datetime:
    """An ISO 8601 date (naive means UTC) or a number of ms since the epoch, as text."""
    stripped = text.strip()
    try:
        return from_ms(float(stripped))
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(stripped)
    except ValueError:
        raise ValueError(f"{text!r} is not a date") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_time_format(value: object) -> datetime:
    """A `relativeTo` as the API accepts it: ms since the epoch, a date string or `{"$date"}`."""
    if isinstance(value, bool):
        raise ValueError("a boolean is not a time")
    if isinstance(value, int | float):
        return from_ms(value)
    if isinstance(value, str):
        return parse_date(value)
    if isinstance(value, dict) and isinstance(value.get("$date"), str):
        return parse_date(value["$date"])
    raise ValueError("not a time")


def start_of_day(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def start_of_month(moment: datetime) -> datetime:
    return start_of_day(moment).replace(day=1)
