"""What `python -m bench` reports for the whole suite: the machine and versions it ran on, how
each benchmark ended, every measurement and curve (`results.json`), the table it prints, and
the chart of the curves (`chart.png`)."""

from __future__ import annotations

import importlib.metadata
import json
import math
import os
import platform
import subprocess
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.report import Curve, Measurement
from service.runtime.embedded_redis import redis_server_binary

REPOSITORY = Path(__file__).resolve().parents[1]
COUNT_AXIS_MAX = 64  # an x axis of whole numbers up to this counts things: whole-number ticks
LOG_SCALE_SPREAD = 50  # a chart whose values span this factor gets a logarithmic y axis


@dataclass
class BenchmarkRun:
    """How one benchmark module ended: "ok", "failed" (it raised: `error`) or "not found"."""

    benchmark: str  # "P1"
    module: str  # "bench.ingest"
    status: str
    seconds: float = 0.0
    error: str = ""


@dataclass
class Summary:
    machine: dict[str, Any]
    quick: bool
    command: str
    runs: list[BenchmarkRun] = field(default_factory=list)
    measurements: list[Measurement] = field(default_factory=list)
    curves: list[Curve] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "machine": self.machine,
            "quick": self.quick,
            "command": self.command,
            "runs": [asdict(run) for run in self.runs],
            "measurements": [m.to_json() for m in self.measurements],
            "curves": [c.to_json() for c in self.curves],
        }


def write_json(summary: Summary, path: Path) -> None:
    """`summary` as strict JSON: a figure that could not be measured (NaN) is null."""
    path.write_text(json.dumps(_strict(summary.to_json()), indent=2, allow_nan=False))


def _strict(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _strict(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_strict(item) for item in value]
    return value


def machine() -> dict[str, Any]:
    """The CPU, memory and versions the figures depend on, and the commit they measure."""
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gb": round(_memory_kb() / 1024 / 1024, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "redis_server": _first_line([_redis_server(), "--version"]),
        "gunicorn": _package_version("gunicorn"),
        "flask": _package_version("flask"),
        "rq": _package_version("rq"),
        "wrk": _first_line(["wrk", "--version"]),
        "commit": _first_line(["git", "-C", str(REPOSITORY), "rev-parse", "HEAD"]),
        "uncommitted_changes": bool(  # to tracked files
            _first_line(
                ["git", "-C", str(REPOSITORY), "status", "--porcelain", "--untracked-files=no"]
            )
        ),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_kb() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _redis_server() -> str:
    try:
        return redis_server_binary()
    except Exception:  # noqa: BLE001 - only a version to report
        return "redis-server"


def _package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _first_line(argv: Sequence[str]) -> str | None:
    """The first line a command prints (wrk prints its version with a non-zero exit)."""
    try:
        completed = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    output = (completed.stdout or completed.stderr).strip()
    return output.splitlines()[0].strip() if output else None


# the table ------------------------------------------------------------------------------------

COLUMNS = ("benchmark", "figure", "measured", "target", "ok", "baseline", "client-bound")


def table(summary: Summary) -> str:
    """One row per measurement, then one per benchmark that did not run to the end."""
    rows = [_row(m) for m in summary.measurements]
    rows += [
        (run.benchmark, run.module, run.status, "", "", run.error, "")
        for run in summary.runs
        if run.status != "ok"
    ]
    widths = [max(len(str(cell)) for cell in column) for column in zip(COLUMNS, *rows, strict=True)]
    lines = [_line(COLUMNS, widths), _line(["-" * w for w in widths], widths)]
    lines += [_line(row, widths) for row in rows]
    return "\n".join(lines)


def _row(m: Measurement) -> tuple[str, ...]:
    sign = "≥" if m.better == "higher" else "≤"
    target = f"{sign} {_number(m.target)} {m.unit}" if m.target is not None else ""
    ok = {True: "yes", False: "NO", None: ""}[m.ok]
    return (
        m.benchmark,
        m.name,
        f"{_number(m.measured)} {m.unit}",
        target,
        ok,
        m.baseline,
        "CLIENT-BOUND" if m.client_bound else "",
    )


def _number(value: float) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _line(cells: Sequence[str], widths: Sequence[int]) -> str:
    return " | ".join(
        str(cell).ljust(width) for cell, width in zip(cells, widths, strict=True)
    ).rstrip()


# the chart ------------------------------------------------------------------------------------


def chart(curves: Sequence[Curve], path: Path) -> bool:
    """One subplot per chart named by the curves, each curve a line with its points marked
    (on a logarithmic y axis when the values span a wide range); False when there is nothing
    to draw."""
    charts: dict[str, list[Curve]] = {}
    for curve in curves:
        charts.setdefault(curve.chart, []).append(curve)
    if not charts:
        return False
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot
    from matplotlib.ticker import MaxNLocator

    columns = 1 if len(charts) == 1 else 2
    rows = math.ceil(len(charts) / columns)
    figure, axes = pyplot.subplots(rows, columns, figsize=(7 * columns, 4.5 * rows), squeeze=False)
    for axis, (title, members) in zip(axes.flat, charts.items(), strict=False):
        for curve in members:
            xs = [x for x, _ in curve.points]
            ys = [y for _, y in curve.points]
            axis.plot(xs, ys, marker="o", label=curve.label)
        all_y = [y for curve in members for _, y in curve.points if math.isfinite(y)]
        if all_y and min(all_y) > 0 and max(all_y) / min(all_y) >= LOG_SCALE_SPREAD:
            axis.set_yscale("log")
        all_x = [x for curve in members for x, _ in curve.points]
        if all_x and max(all_x) <= COUNT_AXIS_MAX and all(float(x).is_integer() for x in all_x):
            axis.xaxis.set_major_locator(MaxNLocator(integer=True))  # rounds, workers
        axis.set_title(title, fontsize=10)
        axis.set_xlabel(members[0].x_label)
        axis.set_ylabel(members[0].y_label)
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=8)
    for axis in list(axes.flat)[len(charts) :]:
        axis.set_visible(False)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    pyplot.close(figure)
    return True
