"""What a benchmark reports: measurements against their targets, and curves for the chart."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Measurement:
    """One figure of one benchmark, e.g. P1's callback throughput relative to the trivial app.

    `better` says which way is good: "higher" (measured must be ≥ target) or "lower" (≤);
    `target` None for a figure that is only reported (a baseline, a scaling point).
    `client_bound`: the load generator, not the server, was the limit of this run (the
    figure is then a lower bound of what the server does).
    """

    benchmark: str  # "P1", "P2", ... or "baseline"
    name: str
    measured: float
    unit: str
    target: float | None = None
    better: str = "higher"
    baseline: str = ""  # the same client's figure against the baseline, in words
    client_bound: bool = False
    notes: str = ""

    @property
    def ok(self) -> bool | None:
        if self.target is None:
            return None
        if self.better == "higher":
            return self.measured >= self.target
        return self.measured <= self.target

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


@dataclass
class Curve:
    """A series for the chart: `points` are (x, y), e.g. offered req/s against p99 ms."""

    chart: str  # the chart it belongs to, e.g. "ingest latency"
    label: str
    x_label: str
    y_label: str
    points: list[tuple[float, float]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Outcome:
    """What one benchmark module returns."""

    measurements: list[Measurement] = field(default_factory=list)
    curves: list[Curve] = field(default_factory=list)
