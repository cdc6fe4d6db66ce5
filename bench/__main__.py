"""`python -m bench [--quick] [--only P1,P3]`: run the benchmark suite, print one table and
write `bench/results/<UTC time>/` (results.json, chart.png, each benchmark's logs in a folder of
its own); `bench/results/latest` points at the newest.

A benchmark that raises is reported as failed and the others still run; one whose module does
not exist is reported as not found. The exit status is 0 whether or not targets are met (this is
a report); it is non-zero only when the harness itself fails.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shlex
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from bench import summary
from bench.report import Outcome

BENCHMARKS = {  # in the order they run
    "P1": "bench.ingest",
    "P2": "bench.losant_calls",
    "P3": "bench.throughput",
    "P4": "bench.followup_latency",
    "P5": "bench.memory",
}
RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    selected = args.only or list(BENCHMARKS)
    folder = RESULTS / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    folder.mkdir(parents=True)
    report = summary.Summary(
        machine=summary.machine(),
        quick=args.quick,
        command=shlex.join(["python", "-m", "bench", *sys.argv[1:]]),
    )
    for benchmark in selected:
        run, outcome = _run(benchmark, args.quick, folder / benchmark)
        report.runs.append(run)
        report.measurements += outcome.measurements
        report.curves += outcome.curves
        print(f"{benchmark} {run.module}: {run.status} ({run.seconds:.0f} s)", flush=True)
    summary.write_json(report, folder / "results.json")
    drawn = _chart(report, folder / "chart.png")
    _point_latest_at(folder)
    print()
    print(summary.table(report))
    print(
        f"\nresults: {folder / 'results.json'}"
        + (f", chart: {folder / 'chart.png'}" if drawn else "")
    )
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs (under 5 minutes)")
    parser.add_argument(
        "--only",
        type=_benchmarks,
        metavar="P1,P3",
        help=f"run only these benchmarks (of {', '.join(BENCHMARKS)})",
    )
    return parser


def _benchmarks(value: str) -> list[str]:
    chosen = [name.strip().upper() for name in value.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in BENCHMARKS]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"not a benchmark: {value!r}")
    return [name for name in BENCHMARKS if name in chosen]


def _run(benchmark: str, quick: bool, scratch: Path) -> tuple[summary.BenchmarkRun, Outcome]:
    """Run one benchmark module; its failure is reported, not raised."""
    module_name = BENCHMARKS[benchmark]
    started = time.monotonic()
    try:
        module = importlib.import_module(module_name)
        scratch.mkdir(parents=True)
        outcome = module.run(quick, scratch)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            return summary.BenchmarkRun(benchmark, module_name, "not found"), Outcome()
        return _failed(benchmark, module_name, started, scratch, exc), Outcome()
    except Exception as exc:  # noqa: BLE001 - one broken benchmark must not hide the others
        return _failed(benchmark, module_name, started, scratch, exc), Outcome()
    return summary.BenchmarkRun(benchmark, module_name, "ok", time.monotonic() - started), outcome


def _failed(
    benchmark: str, module_name: str, started: float, scratch: Path, exc: Exception
) -> summary.BenchmarkRun:
    """The run of a benchmark that raised; its traceback is kept in `<scratch>/error.txt`."""
    scratch.mkdir(parents=True, exist_ok=True)
    (scratch / "error.txt").write_text(
        "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    )
    error = f"{type(exc).__name__}: {exc} (see {scratch / 'error.txt'})"
    return summary.BenchmarkRun(benchmark, module_name, "failed", time.monotonic() - started, error)


def _chart(report: summary.Summary, path: Path) -> bool:
    try:
        return summary.chart(report.curves, path)
    except ImportError:
        print("no chart: matplotlib is not installed (`make bench` installs it)")
        return False


def _point_latest_at(folder: Path) -> None:
    link = RESULTS / "latest"
    staged = RESULTS / f".latest-{os.getpid()}"
    staged.symlink_to(folder.name)
    os.replace(staged, link)


if __name__ == "__main__":  # the guard lets the open-loop client's spawned processes import us
    sys.exit(main())
