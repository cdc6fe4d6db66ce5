"""Running schemathesis cases of one operation under hypothesis, as both fuzzing suites do."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


def exercise(
    strategies: Sequence[Any], call: Callable[[schemathesis.Case], None], examples: int
) -> None:
    """Draw up to `examples` cases from any of `strategies` and `call` each (it validates)."""

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=st.one_of(*strategies))
    def run(case: schemathesis.Case) -> None:
        call(case)

    run()
