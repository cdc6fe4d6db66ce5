"""P3: executions recorded per second (callback -> stored terminal), with 1, 2 and 4 RQ workers.

For each worker count, on a fresh stack (web 2×4, the scheduler): 20 notebooks whose `/logs`
answers take 100 ms (`logsLatencySeconds=0.1`); 1,000 runs (quick: 300) are started through
nbrelay's API, held queued at the sandbox until the last is started, then released together,
each ending as soon as it begins (`executions.start_held`). The
figure is N / (last stored terminal - first end): from the first run's end at Losant (it then
sends its callback) to the moment nbrelay stored the last as terminal (`terminalAt`), so the
starts are not part of it. The notebooks share the callbacks evenly, within the per-notebook
hint burst, so no callback is answered 429.

The sandbox ends the runs and sends their callbacks (4 threads) as fast as it can. When the
last callback arrived (`lastCallbackAt`) almost as late as the last record was stored, the
callbacks, not nbrelay, set the pace: the measurement is then flagged `client_bound` (the
figure is a lower bound of nbrelay's rate). The notes also give the rate at which nbrelay
stored the runs left after the last callback arrived: nbrelay alone, whatever the sandbox did.
"""

from __future__ import annotations

from pathlib import Path

from bench import executions
from bench.report import Curve, Measurement, Outcome
from bench.stack import Stack

TARGET = 500.0  # executions recorded per second, with 2 workers
TARGET_WORKERS = 2
WORKER_COUNTS = (1, 2, 4)
NOTEBOOKS = 20
EXECUTIONS = 1000
EXECUTIONS_QUICK = 300
LOGS_LATENCY = 0.1  # seconds per `/logs` answer
CALLBACK_BOUND = 0.8  # callbacks still arriving after this share of the span: sandbox-bound
WAIT = 180.0  # seconds the executions may take to be stored terminal


def run(quick: bool, out: Path) -> Outcome:
    count = EXECUTIONS_QUICK if quick else EXECUTIONS
    curve = Curve(
        chart="throughput vs workers",
        label=f"executions recorded/s ({count} ending at once, /logs {LOGS_LATENCY * 1000:g} ms)",
        x_label="RQ workers",
        y_label="executions/s",
    )
    measurements = []
    for workers in WORKER_COUNTS:
        measurement = recorded_per_second(workers, count, out / f"workers-{workers}")
        if quick:
            measurement.notes += f"; quick mode: {count} executions, not {EXECUTIONS}"
        curve.points.append((workers, measurement.measured))
        measurements.append(measurement)
    return Outcome(measurements=measurements, curves=[curve])


def recorded_per_second(workers: int, count: int, root: Path) -> Measurement:
    with Stack(root, workers=workers) as stack:
        notebooks = [
            stack.notebook(f"throughput-{i}", logsLatencySeconds=LOGS_LATENCY)
            for i in range(NOTEBOOKS)
        ]
        ids = executions.start_held(stack, notebooks, count, logsLatencySeconds=LOGS_LATENCY)
        records = executions.wait_stored_terminal(stack, ids, WAIT)
        rejected = executions.callbacks(stack, notebooks)["failed"]
    first_end = min(t for t in map(executions.ended_at, records) if t is not None)
    stored = max(t for t in map(executions.stored_terminal_at, records) if t is not None)
    last_callback = max(
        (t for r in records if (t := executions.seconds(r.meta.get("last_callback_at")))),
        default=first_end,
    )
    span = stored - first_end
    callback_span = last_callback - first_end
    backlog = sum(1 for r in records if (executions.stored_terminal_at(r) or 0) > last_callback)
    drain = stored - last_callback
    return Measurement(
        benchmark="P3",
        name=f"executions recorded/s, {workers} worker{'s' if workers > 1 else ''}",
        measured=round(count / span, 1),
        unit="executions/s",
        target=TARGET if workers == TARGET_WORKERS else None,
        client_bound=callback_span >= CALLBACK_BOUND * span,
        notes=(
            f"{count} runs over {NOTEBOOKS} notebooks ended within "
            f"{executions.end_window(records):.1f}s; first end to last stored {span:.2f}s, "
            f"to last callback received {callback_span:.2f}s; after it, {backlog} stored in "
            f"{drain:.2f}s ({backlog / drain if drain > 0 else 0:.0f}/s, nbrelay alone)"
            + (f"; {rejected} callbacks not accepted" if rejected else "")
        ),
    )
