"""A notebook's health over its recent terminal runs: how many succeeded, how long they took
(p50, p95), and its last failure, computed from Losant's records as stored.

A run's duration is what Losant's timestamps say: from `runStartedAt` to the last phase it
recorded an end for (`outputsCompletedAt`, else `notebookCompletedAt`, else
`inputsCompletedAt`), so a run that failed in its inputs still has the time it took to fail.
Time spent queued is not part of it. A run without a start or without any end (canceled while
queued) has no duration and is left out of the percentiles, but not out of the success rate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from service.events.records import ExecutionRecord
from service.times import parse_time_ms

SUCCESS = "completed"
ENDS = ("outputsCompletedAt", "notebookCompletedAt", "inputsCompletedAt")  # latest phase first


def finished_at(losant: Mapping[str, Any] | None) -> str | None:
    """The end of the run's last recorded phase, as Losant wrote it; None before any ended."""
    record = losant or {}
    ends = [(parse_time_ms(record.get(name)), record.get(name)) for name in ENDS]
    known = [(ms, str(text)) for ms, text in ends if ms is not None]
    return max(known)[1] if known else None


def run_duration(losant: Mapping[str, Any] | None) -> float | None:
    """Seconds from the run's start to the end of its last recorded phase; None without both."""
    start = parse_time_ms((losant or {}).get("runStartedAt"))
    end = parse_time_ms(finished_at(losant))
    if start is None or end is None or end < start:
        return None
    return (end - start) / 1000


def percentile(values: Sequence[float], share: float) -> float | None:
    """The `share` (0..1) percentile of `values`, interpolated linearly between the two closest
    ranks (numpy's default, `statistics.quantiles(method="inclusive")`); None for no values."""
    if not 0 <= share <= 1:
        raise ValueError(f"share must be within 0 and 1, not {share}")
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * share
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True)
class NotebookHealth:
    """`durations` and `outcomes` (1 success, 0 failure) run oldest first, as sparklines draw."""

    runs: int
    succeeded: int
    p50: float | None
    p95: float | None
    durations: list[float]
    outcomes: list[float]
    last_failure: ExecutionRecord | None

    @property
    def success_rate(self) -> float | None:
        return self.succeeded / self.runs if self.runs else None


def notebook_health(records: Sequence[ExecutionRecord]) -> NotebookHealth:
    """The health over `records`: one notebook's terminal runs, newest first (as the store's
    `query` returns them)."""
    durations = [d for r in records if (d := run_duration(r.losant)) is not None]
    failures = [r for r in records if r.status != SUCCESS]
    return NotebookHealth(
        runs=len(records),
        succeeded=len(records) - len(failures),
        p50=percentile(durations, 0.5),
        p95=percentile(durations, 0.95),
        durations=durations[::-1],
        outcomes=[1.0 if r.status == SUCCESS else 0.0 for r in reversed(records)],
        last_failure=failures[0] if failures else None,
    )
