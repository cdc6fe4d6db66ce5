"""Durations in the pipeline file: a number of seconds, or text such as `250ms`, `30s`, `5m`,
`4h`, `1d`, or a sum like `1h30m`."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator

UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")


def parse_duration(value: Any) -> float:
    """Seconds in `value`; ValueError for anything else or a negative number."""
    if isinstance(value, bool):
        raise ValueError("must be a duration such as 30s, 5m or 4h")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (text := value.strip().replace(" ", "")):
        if re.fullmatch(r"\d+(?:\.\d+)?", text):
            return float(text)
        parts = PART.findall(text)
        if "".join(number + unit for number, unit in parts) != text:
            raise ValueError(f"{value!r} is not a duration such as 30s, 5m or 4h")
        seconds = sum(float(number) * UNITS[unit] for number, unit in parts)
    else:
        raise ValueError("must be a duration such as 30s, 5m or 4h")
    if seconds < 0:
        raise ValueError("must not be negative")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]
