"""The benchmark suite's own plumbing, without running a benchmark: reading wrk's output, the
report's table and JSON, and the runner going on past a benchmark that is missing or fails."""

from __future__ import annotations

import json
import math
import sys
import types
from pathlib import Path

import pytest

import bench.__main__ as runner
from bench import summary
from bench.load import Request, parse_wrk, wrk_script
from bench.report import Curve, Measurement, Outcome

WRK_OUTPUT = """Running 10s test @ http://127.0.0.1:8000
  2 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     5.12ms    2.01ms  30.00ms   80.00%
    Req/Sec     1.50k   100.00     1.70k    70.00%
  Latency Distribution
     50%  850.00us
     75%    6.00ms
     90%    7.50ms
     99%    1.20s
  30012 requests in 10.00s, 4.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 12
Requests/sec:   3001.20
Transfer/sec:    400.00KB
"""


def test_wrk_output_is_read_in_milliseconds_with_its_errors_and_cpu_share() -> None:
    result = parse_wrk(WRK_OUTPUT, cpu_seconds=18.0, duration=10.0, threads=2)

    assert result.requests_per_second == 3001.2
    assert result.p50_ms == pytest.approx(0.85)
    assert result.p99_ms == pytest.approx(1200.0)
    assert (result.requests, result.non_2xx, result.socket_errors) == (30012, 12, 5)
    assert result.cpu_per_thread == pytest.approx(0.9)
    assert result.client_bound


def test_wrk_output_without_its_figures_is_an_error() -> None:
    with pytest.raises(ValueError, match="Requests/sec"):
        parse_wrk("unable to connect to 127.0.0.1:1\n", cpu_seconds=0, duration=1, threads=2)


def test_the_wrk_script_posts_the_body_to_each_path_in_turn() -> None:
    script = wrk_script(Request("POST", ["/callbacks/a", "/callbacks/b"], b'{"x": "1"}'), 2)

    assert 'wrk.method = "POST"' in script
    assert 'wrk.body = "{\\"x\\": \\"1\\"}"' in script
    assert 'local paths = {"/callbacks/a", "/callbacks/b"}' in script
    assert "i = math.floor(number * #paths / 2)" in script


def _summary() -> summary.Summary:
    report = summary.Summary(machine={"cores": 2}, quick=True, command="python -m bench")
    report.measurements = [
        Measurement("P1", "ratio", 0.41, "×", target=0.8, baseline="trivial 2,500 req/s"),
        Measurement("P1", "p99", math.nan, "ms", target=25, better="lower", client_bound=True),
    ]
    report.curves = [Curve("latency", "nbrelay", "req/s", "p99 ms", [(500, 12.5)])]
    report.runs = [
        summary.BenchmarkRun("P1", "bench.ingest", "ok", 80.0),
        summary.BenchmarkRun("P2", "bench.losant_calls", "not found"),
    ]
    return report


def test_the_table_shows_each_figure_against_its_target_and_what_did_not_run() -> None:
    header, rule, *rows = _cells(summary.table(_summary()))

    assert header == list(summary.COLUMNS)
    assert set(rule[0]) == {"-"}
    assert rows[0] == ["P1", "ratio", "0.41 ×", "≥ 0.8 ×", "NO", "trivial 2,500 req/s", ""]
    assert rows[1] == ["P1", "p99", "n/a ms", "≤ 25 ms", "NO", "", "CLIENT-BOUND"]
    assert rows[2][:3] == ["P2", "bench.losant_calls", "not found"]


def _cells(table: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.split("|")] for line in table.splitlines()]


def test_the_json_is_strict_a_figure_not_measured_is_null(tmp_path: Path) -> None:
    summary.write_json(_summary(), tmp_path / "results.json")

    data = json.loads((tmp_path / "results.json").read_text())
    assert data["measurements"][0]["ok"] is False
    assert data["measurements"][1]["measured"] is None
    assert data["curves"][0]["points"] == [[500, 12.5]]
    assert data["runs"][1] == {
        "benchmark": "P2",
        "module": "bench.losant_calls",
        "status": "not found",
        "seconds": 0.0,
        "error": "",
    }


def test_the_runner_reports_a_missing_and_a_failing_benchmark_and_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(quick: bool, out: Path) -> Outcome:
        raise RuntimeError("the stack did not start")

    def working(quick: bool, out: Path) -> Outcome:
        return Outcome([Measurement("P3", "executions/s", 600, "/s", target=500)])

    for name, run in (("fake_bench_broken", broken), ("fake_bench_working", working)):
        module = types.ModuleType(name)
        module.run = run  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(
        runner,
        "BENCHMARKS",
        {"P1": "fake_bench_missing", "P2": "fake_bench_broken", "P3": "fake_bench_working"},
    )
    monkeypatch.setattr(runner, "RESULTS", tmp_path)
    monkeypatch.setattr(summary, "machine", lambda: {"cores": 2})

    assert runner.main(["--quick"]) == 0

    data = json.loads((tmp_path / "latest" / "results.json").read_text())
    assert [run["status"] for run in data["runs"]] == ["not found", "failed", "ok"]
    assert "RuntimeError: the stack did not start" in data["runs"][1]["error"]
    assert (tmp_path / "latest" / "P2" / "error.txt").exists()
    assert data["quick"] is True
    assert [m["ok"] for m in data["measurements"]] == [True]
    rows = _cells(capsys.readouterr().out.split("\n\n")[1])
    assert ["P2", "fake_bench_broken", "failed"] == rows[4][:3]
    assert ["P3", "executions/s", "600 /s", "≥ 500 /s", "yes"] == rows[2][:5]


def test_only_names_benchmarks_of_the_suite() -> None:
    assert runner._benchmarks("p3, P1") == ["P1", "P3"]
    with pytest.raises(Exception, match="not a benchmark"):
        runner._benchmarks("P9")


def test_the_chart_has_a_subplot_per_chart(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    curves = _summary().curves + [Curve("scaling", "P3", "workers", "/s", [(1, 100), (2, 190)])]

    assert summary.chart(curves, tmp_path / "chart.png")
    assert (tmp_path / "chart.png").stat().st_size > 1000
