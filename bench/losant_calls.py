"""P2: Losant API calls per execution beyond the `execute` itself, counted at the sandbox.

Two loads, each on a fresh stack (2 RQ workers, web 2×4, the scheduler), runs started through
nbrelay's HTTP API (`bench.executions`: so each start's own lookups count) and scripted to
complete:

- a burst: 1,000 distinct executions over 20 notebooks (quick: 300 over 6, the same 50 per
  notebook), held queued at the sandbox until all are started, then ending evenly within 10 s
  (`executions.start_held`);
- steady: 10 executions a second on one notebook for 60 s (quick: 20 s), each taking 0.5 s.

Once nbrelay stored every execution as terminal (and `SETTLE` seconds more, for syncs under
way), the sandbox's per-notebook request counts (`SandboxClient.stats`) are summed; the calls
beyond the executes, divided by the executions, are the figure.
"""

from __future__ import annotations

import time
from pathlib import Path

from bench import executions
from bench.report import Measurement, Outcome
from bench.stack import Stack

TARGET = 0.3  # Losant calls per execution beyond the execute
NOTEBOOKS = 20
BURST = 1000
BURST_QUICK = 300
NOTEBOOKS_QUICK = 6  # as many executions per notebook as the full burst
BURST_WINDOW = 10.0  # seconds within which the burst's executions end
STEADY_RATE = 10.0  # executions per second
STEADY_SECONDS = 60.0
STEADY_SECONDS_QUICK = 20.0
STEADY_DURATION = 0.5  # seconds each steady run takes
SETTLE = 3.0  # seconds to let syncs under way finish before counting
WAIT = 120.0  # seconds the executions may take to be stored terminal


def run(quick: bool, out: Path) -> Outcome:
    return Outcome(
        measurements=[
            burst(BURST_QUICK, NOTEBOOKS_QUICK, out / "burst")
            if quick
            else burst(BURST, NOTEBOOKS, out / "burst"),
            steady(STEADY_SECONDS_QUICK if quick else STEADY_SECONDS, out / "steady"),
        ]
    )


def burst(count: int, notebook_count: int, root: Path) -> Measurement:
    with Stack(root) as stack:
        notebooks = [stack.notebook(f"burst-{i}") for i in range(notebook_count)]
        before = executions.losant_calls(stack, notebooks)
        ids = executions.start_held(stack, notebooks, count, BURST_WINDOW)
        records = executions.wait_stored_terminal(stack, ids, WAIT)
        time.sleep(SETTLE)
        calls = _difference(executions.losant_calls(stack, notebooks), before)
        window = executions.end_window(records)
    return _measurement(
        f"calls per execution, {count} over {notebook_count} notebooks",
        calls,
        count,
        f"runs started through the API ended within {window:.1f}s"
        + (f"; quick mode: {count} executions, not {BURST}" if count != BURST else ""),
    )


def steady(seconds: float, root: Path) -> Measurement:
    with Stack(root) as stack:
        notebook = stack.notebook("steady", status="completed", durationSeconds=STEADY_DURATION)
        before = executions.losant_calls(stack, [notebook])
        api = executions.Api(stack)
        ids: list[str] = []
        rate = executions.at_rate(STEADY_RATE, seconds, lambda _: ids.append(api.start(notebook)))
        executions.wait_stored_terminal(stack, ids, WAIT)
        time.sleep(SETTLE)
        calls = _difference(executions.losant_calls(stack, [notebook]), before)
    return _measurement(
        f"calls per execution, {STEADY_RATE:g}/s on one notebook",
        calls,
        len(ids),
        f"{len(ids)} runs started through the API at {rate:.1f}/s for {seconds:g}s, "
        f"each {STEADY_DURATION:g}s long",
    )


def _difference(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: n - before.get(k, 0) for k, n in after.items() if n - before.get(k, 0)}


def _measurement(name: str, calls: dict[str, int], count: int, notes: str) -> Measurement:
    beyond = sum(n for action, n in calls.items() if action != "execute")
    breakdown = ", ".join(f"{action} {n}" for action, n in sorted(calls.items()))
    return Measurement(
        benchmark="P2",
        name=name,
        measured=round(beyond / count, 3),
        unit="calls/execution",
        target=TARGET,
        better="lower",
        notes=f"{notes}; Losant calls counted at the sandbox: {breakdown}",
    )
