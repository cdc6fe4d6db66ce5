"""Parameter types of the `nbrelay` commands that click lacks."""

from __future__ import annotations

import math
from typing import Any

import click


class FiniteRange(click.FloatRange):
    """A finite number within a range; click's FloatRange lets `nan` and `inf` through."""

    name = "finite number"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


class PositiveNumber(FiniteRange):
    """A finite number above 0 (seconds, minutes)."""

    name = "positive number"

    def __init__(self) -> None:
        super().__init__(min=0, min_open=True)


POSITIVE = PositiveNumber()
