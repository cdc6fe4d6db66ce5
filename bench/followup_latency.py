"""P4: follow-up latency, from the end of step A's run (when the sandbox sends its callback) to
the `execute` request of step B at Losant, with runs of A ending at a steady 100 a second (the
target), and at lower rates for the curve.

For each rate, a fresh stack (2 RQ workers, web 2×4, the scheduler) with the pipeline
`chain: a -> b` in its pipeline file (`NBRELAY_PIPELINES`); A's runs take `A_DURATION`, B's
`B_DURATION`. Pipeline runs are started through `POST /api/pipelines/chain/runs` at that rate
for 30 s (quick: 10 s), so nbrelay's workers execute A at that rate and A's callbacks arrive at
it, as long as nbrelay keeps up (the rate A's runs really ended at is reported). The sandbox
sends each callback once (`callbackAttempts=1`): a callback the per-notebook hint budget
answers 429 is still acted on by nbrelay, and retrying it would only tie up the sandbox's 4
callback threads.

Both times come from the sandbox's own records (`/logs`, read after the load with the
`logsLimitCap` guess raised so that one page holds every run): A's `notebookCompletedAt` and B's
`runQueuedAt` (set when its execute request arrived), paired by the pipeline run that nbrelay's
marker in each `templateContext` names. Runs whose B was not executed within `DRAIN` seconds
after the load (quick: 15 s) count with the latency they had reached then (a lower bound,
said in the notes); runs whose A had not even ended by then are left out (also said).
"""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

from bench import executions
from bench.report import Curve, Measurement, Outcome
from bench.stack import Stack
from service.marker import read_marker
from service.runtime.processes import wait_until

TARGET_P99 = 250.0  # ms
RATE = 100.0  # pipeline runs started per second: the target's rate
RATES = (10.0, 30.0, RATE)
RATES_QUICK = (20.0, RATE)
SECONDS = 30.0
SECONDS_QUICK = 10.0
A_DURATION = 1.0  # seconds step A's runs take
B_DURATION = 0.1
LOAD_WAIT = 30.0  # seconds for the scheduler to put the pipeline file in force
DRAIN = 60.0  # seconds after the load for the last B to be executed
DRAIN_QUICK = 15.0
PERCENTILES = (0.5, 0.9, 0.95, 0.99, 0.999)
PIPELINE = """\
pipelines:
  chain:
    steps:
      a: {{notebook: {a}}}
      b: {{notebook: {b}, after: a}}
"""


def run(quick: bool, out: Path) -> Outcome:
    seconds, drain = (SECONDS_QUICK, DRAIN_QUICK) if quick else (SECONDS, DRAIN)
    outcome = Outcome()
    for rate in RATES_QUICK if quick else RATES:
        measurement, curve = latency_at(rate, seconds, drain, out / f"rate-{rate:g}")
        outcome.measurements.append(measurement)
        outcome.curves.append(curve)
    return outcome


def latency_at(rate: float, seconds: float, drain: float, out: Path) -> tuple[Measurement, Curve]:
    out.mkdir(parents=True, exist_ok=True)
    pipeline_file = out / "pipelines.yaml"
    pipeline_file.write_text("pipelines: {}\n")  # the notebooks exist once the stack runs
    with Stack(out, env={"NBRELAY_PIPELINES": str(pipeline_file)}) as stack:
        a = stack.notebook("chain-a", status="completed", durationSeconds=A_DURATION)
        b = stack.notebook("chain-b", status="completed", durationSeconds=B_DURATION)
        pipeline_file.write_text(textwrap.dedent(PIPELINE.format(a=a, b=b)))
        stack.sandbox.set_guesses(callbackAttempts=1)
        api = executions.Api(stack)
        wait_until(lambda: api.get("/api/pipelines")["items"], LOAD_WAIT, "the pipeline file", 0.5)
        achieved = executions.at_rate(
            rate, seconds, lambda _: api.post("/api/pipelines/chain/runs", {"params": {}})
        )
        runs = int(rate * seconds)
        deadline = time.time() + drain
        while _executed(stack, b) < runs and time.time() < deadline:
            time.sleep(1)
        stack.sandbox.set_guesses(logsLimitCap=runs)
        ended = _by_run(stack, a, "notebook_completed_at", runs)
        queued = _by_run(stack, b, "run_queued_at", runs)
        rejected = executions.callbacks(stack, [a])["failed"]
    if not ended:
        raise RuntimeError(f"no run of step A ended within {drain:g}s after the load")
    cutoff = min(time.time(), deadline)
    latencies = sorted((queued.get(run_id, cutoff) - end) * 1000 for run_id, end in ended.items())
    missing = sum(1 for run_id in ended if run_id not in queued)
    values = {p: executions.percentile(latencies, p) for p in PERCENTILES}
    notes = (
        f"{runs} pipeline runs started at {achieved:.1f}/s for {seconds:g}s; A's runs ended at "
        f"{len(ended) / max(executions.span(ended.values()), 1e-9):.1f}/s; "
        f"p50 {values[0.5]:.0f} ms, p99 {values[0.99]:.0f} ms, max {latencies[-1]:.0f} ms"
        + (
            f"; {rejected} of A's callbacks not accepted (a 429 is still acted on)"
            if rejected
            else ""
        )
        + (
            f"; {missing} of {len(ended)} B not executed {drain:g}s after the load: counted "
            "at that moment, so the percentiles are lower bounds"
            if missing
            else ""
        )
        + (f"; only {len(ended)} of {runs} A ended" if len(ended) < runs else "")
    )
    curve = Curve(
        chart="follow-up latency",
        label=f"callback of A -> execute of B at {rate:g} runs/s",
        x_label="percentile",
        y_label="ms",
        points=[(p * 100, round(v, 1)) for p, v in values.items()],
    )
    measurement = Measurement(
        benchmark="P4",
        name=f"follow-up latency p99 at {rate:g} callbacks/s",
        measured=round(values[0.99], 1),
        unit="ms",
        target=TARGET_P99 if rate == RATE else None,
        better="lower",
        notes=notes,
    )
    return measurement, curve


def _executed(stack: Stack, notebook_id: str) -> int:
    return executions.losant_calls(stack, [notebook_id]).get("execute", 0)


def _by_run(stack: Stack, notebook_id: str, field: str, runs: int) -> dict[str, float]:
    """The time `field` of each run of the notebook at the sandbox, by the pipeline run its
    marker names (runs without the time yet are left out)."""
    found = {}
    for execution in stack.losant.logs(stack.application_id, notebook_id, limit=runs):
        marker = read_marker(execution.template_context)
        moment = getattr(execution, field)
        if marker is not None and marker.run and moment is not None:
            found[marker.run] = moment.timestamp()
    return found
