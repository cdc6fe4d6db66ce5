"""P3: executions recorded per second (callback -> stored terminal), with 1, 2 and 4 RQ workers.

For each worker count, on a fresh stack (web 2×4, the scheduler): 20 notebooks whose `/logs`
answers take 100 ms (`logsLatencySeconds=0.1`); 1,000 runs (quick: 400) are started through
nbrelay's API, held queued at the sandbox until the last is started, then released together,
each ending as soon as it begins (`executions.start_held`). The sandbox sends no callback
(`dropCallbacks`): once every run has ended there, the benchmark sends one callback per run
itself, from a client of its own (`bench.load.open_loop`, 2 processes, as fast as they go) to the
notebooks' signed callback URLs. The figure is N / (last stored terminal - first callback
sent): how fast nbrelay turns callbacks into stored terminal records, Losant's reads included,
whatever the sandbox's own pace of ending runs and posting callbacks (Python threads that would
need a core of their own at this rate).

The client's figures are in the notes: when its last answer came almost as late as the last
record was stored, the callbacks, not nbrelay, set the pace, and the measurement is flagged
`client_bound` (the figure is then a lower bound of nbrelay's rate).
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

from bench import executions, load
from bench.report import Curve, Measurement, Outcome
from bench.stack import Stack

TARGET = 500.0  # executions recorded per second, with 2 workers
TARGET_WORKERS = 2
WORKER_COUNTS = (1, 2, 4)
NOTEBOOKS = 20
EXECUTIONS = 1000
EXECUTIONS_QUICK = 400
LOGS_LATENCY = 0.1  # seconds per `/logs` answer
SEND_RATE = 4000.0  # callbacks per second asked of the client: more than nbrelay takes
CLIENT_BOUND = 0.8  # the client still answering after this share of the span: client-paced
WAIT = 180.0  # seconds the executions may take to be stored terminal
CALLBACK_BODY = json.dumps({"success": True}).encode()


def run(quick: bool, out: Path) -> Outcome:
    count = EXECUTIONS_QUICK if quick else EXECUTIONS
    curve = Curve(
        chart="throughput vs workers",
        label=f"executions recorded/s ({count} callbacks, /logs {LOGS_LATENCY * 1000:g} ms)",
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
    script = {"logsLatencySeconds": LOGS_LATENCY, "dropCallbacks": 1.0}
    with Stack(root, workers=workers) as stack:
        notebooks = [stack.notebook(f"throughput-{i}", **script) for i in range(NOTEBOOKS)]
        ids = executions.start_held(stack, notebooks, count, **script)
        executions.wait_ended(stack, notebooks, count, WAIT)
        paths = [urlsplit(stack.callback_url(notebooks[k % NOTEBOOKS])).path for k in range(count)]
        sent = load.open_loop(
            stack.url,
            load.Request("POST", paths, body=CALLBACK_BODY),
            rate=SEND_RATE,
            duration=count / SEND_RATE,
        )
        records = executions.wait_stored_terminal(stack, ids, WAIT)
    stored = max(t for t in map(executions.stored_terminal_at, records) if t is not None)
    span = stored - sent.started_at
    return Measurement(
        benchmark="P3",
        name=f"executions recorded/s, {workers} worker{'s' if workers > 1 else ''}",
        measured=round(count / span, 1),
        unit="executions/s",
        target=TARGET if workers == TARGET_WORKERS else None,
        client_bound=sent.sending >= CLIENT_BOUND * span,
        notes=(
            f"{count} runs over {NOTEBOOKS} notebooks; first callback sent to last stored "
            f"terminal {span:.2f}s; the client: {sent.describe()}, its last answer after "
            f"{sent.sending:.2f}s"
        ),
    )
