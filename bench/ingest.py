"""P1, callback ingest: nbrelay's `POST /callbacks/<token>` against two baselines served by
gunicorn with nbrelay's own settings, all loaded by the same clients in one run.

- trivial: a Flask endpoint that parses the JSON body and answers 202 (the ceiling);
- one write: the trivial endpoint plus one Redis write before the 202 — the ceiling of any
  receiver that, like nbrelay, answers only once the callback is recorded;
- naive: one `rq` enqueue per callback, one `/logs` read per job (what tutorials build).

Closed loop (wrk, 2 threads, 16 connections, in rounds that take turns between the targets)
gives the most requests per second of each, and of nbrelay's `GET /healthz`; open loop (a fixed
500 req/s) gives nbrelay's p99 beside the trivial app's, and a latency curve over offered rates.
nbrelay's callbacks rotate over many notebooks, as one notebook's hint budget answers 429 beyond
HINT_BURST at once; non-2xx answers are counted and reported. nbrelay's workers are held back
during the load (the figures are the web's own cost on this machine's cores) and drain the
syncs afterwards.

The naive receiver's P2 figure (Losant reads per callback, counted at the sandbox) is measured
with its RQ worker running: a steady trickle of callbacks over 20 notebooks, then the reads.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from urllib.parse import urlsplit

from rq import Queue
from rq.registry import StartedJobRegistry

from bench.baselines import Served, naive
from bench.load import OpenLoopResult, Request, WrkResult, open_loop, run_wrk
from bench.report import Curve, Measurement, Outcome
from bench.stack import Stack
from service import keys
from service.queues import SYNC_QUEUE
from service.runtime.processes import wait_until

BODY = json.dumps(
    {"success": True, "notebook": {"name": "bench"}, "execution": {"status": "completed"}}
).encode()
THROUGHPUT_TARGET = 0.8  # × the trivial app's requests per second
P99_RATE = 500.0  # req/s of the open-loop latency target
P99_TARGET = 25.0  # ms
DRAIN_TIMEOUT = 180.0  # seconds the syncs of the run may take to drain afterwards
NAIVE_NOTEBOOKS = 20
NAIVE_RATE = 50.0  # callbacks per second of the naive receiver's P2 run
CURVE_CHART = "P1 ingest: p99 latency at a fixed offered rate (open loop)"
THROUGHPUT_CHART = "P1 ingest: closed-loop req/s per interleaved round (wrk 2 threads × 16 conns)"


class Plan:
    """How long and how much: `quick` shortens every phase and keeps two curve points."""

    def __init__(self, quick: bool) -> None:
        self.wrk_rounds = 5  # the wrk time of each target is split into interleaved rounds
        self.wrk_round_seconds = 1.0 if quick else 2.0
        self.p99_seconds = 5.0 if quick else 10.0
        self.curve_seconds = 3.0 if quick else 5.0
        self.curve_rates = (P99_RATE, 1000.0) if quick else (250.0, P99_RATE, 1000.0, 1500.0)
        # Enough notebooks that no notebook's hint budget (60 at once, then 1/s) runs out.
        self.notebooks = 300 if quick else 1000
        self.naive_seconds = 2.0 if quick else 4.0


def run(quick: bool, out: Path) -> Outcome:
    plan = Plan(quick)
    with Stack(out / "stack", workers=0, scheduler=False) as stack:
        notebooks = [stack.notebook(f"ingest-{i}") for i in range(plan.notebooks)]
        nbrelay = Request("POST", [urlsplit(stack.callback_url(n)).path for n in notebooks], BODY)
        naive_request = Request("POST", [f"/callbacks/{n}" for n in notebooks], BODY)
        env = {**stack.env, "REDIS_URL": stack.redis_server.url}  # type: ignore[union-attr]
        trivial_app = Served("trivial", "bench.baselines.trivial:app", env, out)
        one_write_app = Served("one-write", "bench.baselines.one_write:app", env, out)
        naive_app = Served("naive", "bench.baselines.naive:app", env, out)
        with trivial_app as trivial, one_write_app as one_write, naive_app as naive_served:
            targets = {
                "trivial": (trivial.url, nbrelay),
                "nbrelay": (stack.url, nbrelay),
                "one-write": (one_write.url, nbrelay),
                "naive": (naive_served.url, naive_request),
            }
            healthz = (stack.url, Request("GET", ["/healthz"]))
            closed = _closed_loop({**targets, "healthz": healthz}, plan, out)
            curves: dict[str, dict[float, OpenLoopResult]] = {name: {} for name in targets}
            for rate in plan.curve_rates:
                seconds = plan.p99_seconds if rate == P99_RATE else plan.curve_seconds
                for name, (url, request) in targets.items():
                    curves[name][rate] = open_loop(url, request, rate=rate, duration=seconds)
        Queue(naive.QUEUE, connection=stack.redis).empty()  # the jobs of the load, never run
        naive_reads = _naive_reads_per_callback(stack, env, out, plan)
        drained = _drain(stack)
    _write_log(out / "ingest.json", closed, curves)
    return Outcome(
        measurements=_measurements(closed, curves, naive_reads, drained),
        curves=_curves(closed, curves),
    )


def _closed_loop(
    targets: dict[str, tuple[str, Request]], plan: Plan, out: Path
) -> dict[str, list[WrkResult]]:
    """wrk against each target in turn, round after round: the machine's other load (these
    are 2 shared cores) then weighs alike on each target instead of on whichever ran last."""
    rounds: dict[str, list[WrkResult]] = {name: [] for name in targets}
    for number in range(1, plan.wrk_rounds + 1):
        for name, (url, request) in targets.items():
            log = out / f"wrk-{name}-{number}.txt"
            rounds[name].append(run_wrk(url, request, duration=plan.wrk_round_seconds, log=log))
    return rounds


def _naive_reads_per_callback(
    stack: Stack, env: dict[str, str], out: Path, plan: Plan
) -> tuple[float, int]:
    """(sandbox `/logs` reads per accepted callback, callbacks) of the naive receiver with its
    worker running, over notebooks of its own."""
    notebooks = [stack.notebook(f"naive-{i}") for i in range(NAIVE_NOTEBOOKS)]
    request = Request("POST", [f"/callbacks/{n}" for n in notebooks], BODY)
    served = Served("naive-p2", "bench.baselines.naive:app", env, out, worker=naive.WORKER)
    with served:
        result = open_loop(served.url, request, rate=NAIVE_RATE, duration=plan.naive_seconds)
        queue = Queue(naive.QUEUE, connection=stack.redis)
        started = StartedJobRegistry(naive.QUEUE, connection=stack.redis)
        wait_until(
            lambda: queue.count == 0 and started.count == 0, DRAIN_TIMEOUT, "naive jobs to run"
        )
    accepted = sum(n for status, n in result.statuses.items() if 200 <= status < 300)
    reads = sum(
        stack.sandbox.stats(stack.application_id, n)["requests"].get("logs", 0) for n in notebooks
    )
    return reads / max(accepted, 1), accepted


def _drain(stack: Stack) -> float:
    """Start two workers and wait until every notebook the load made dirty is synced and no
    sync is queued or running; the seconds it took."""
    started = time.monotonic()
    for _ in range(2):
        stack.children.append(stack.deployment.worker().start())
    syncs = Queue(SYNC_QUEUE, connection=stack.redis)
    running = StartedJobRegistry(SYNC_QUEUE, connection=stack.redis)
    wait_until(
        lambda: (
            stack.redis.zcard(keys.dirty_notebooks()) == 0
            and syncs.count == 0
            and running.count == 0
        ),
        DRAIN_TIMEOUT,
        "syncs to drain",
    )
    return time.monotonic() - started


def _open_loop_client_bound(measured: OpenLoopResult, trivial: OpenLoopResult) -> bool:
    """The client was the limit of `measured` when its CPU was saturated, or when the same
    client could not hold the rate against the trivial app either; a server that falls behind
    while the trivial app keeps up is the server's limit."""
    return measured.cpu_saturated or trivial.client_bound


def _ratio_to_trivial(rounds: dict[str, list[WrkResult]], name: str) -> float:
    """The median over rounds of `name`'s req/s ÷ the trivial app's in the same round: a
    burst of the machine's other load spoils one round, not the figure."""
    pairs = zip(rounds[name], rounds["trivial"], strict=True)
    return statistics.median(mine.requests_per_second / t.requests_per_second for mine, t in pairs)


def _measurements(
    rounds: dict[str, list[WrkResult]],
    curves: dict[str, dict[float, OpenLoopResult]],
    naive_reads: tuple[float, int],
    drain_seconds: float,
) -> list[Measurement]:
    closed = {name: WrkResult.merged(results) for name, results in rounds.items()}
    trivial = closed["trivial"]
    wrk_bound = any(result.client_bound for result in closed.values())
    at_rate = {name: by_rate[P99_RATE] for name, by_rate in curves.items()}
    reads, callbacks = naive_reads

    def versus_trivial(name: str, label: str, benchmark: str, target: float | None) -> Measurement:
        result = closed[name]
        return Measurement(
            benchmark,
            f"{label} throughput ÷ trivial Flask (closed loop, wrk)",
            round(_ratio_to_trivial(rounds, name), 3),
            "×",
            target=target,
            baseline=f"trivial {trivial.requests_per_second:,.0f} req/s, "
            f"{label} {result.requests_per_second:,.0f} req/s",
            client_bound=trivial.client_bound or result.client_bound,
            notes=f"median of {len(rounds[name])} interleaved rounds' ratios; over all rounds "
            f"{label}: {result.describe()}; trivial: {trivial.describe()}",
        )

    def p99_at_rate(name: str, label: str, benchmark: str, target: float | None) -> Measurement:
        return Measurement(
            benchmark,
            f"{label} p99 at an open-loop {P99_RATE:.0f} req/s",
            round(at_rate[name].p99_ms, 1),
            "ms",
            target=target,
            better="lower",
            baseline=f"trivial p99 {at_rate['trivial'].p99_ms:.1f} ms at the same rate",
            client_bound=_open_loop_client_bound(at_rate[name], at_rate["trivial"]),
            notes=f"{label}: {at_rate[name].describe()}; trivial: "
            f"{at_rate['trivial'].describe()}; syncs drained {drain_seconds:.1f} s after the load",
        )

    return [
        versus_trivial("nbrelay", "POST /callbacks", "P1", THROUGHPUT_TARGET),
        p99_at_rate("nbrelay", "POST /callbacks", "P1", P99_TARGET),
        versus_trivial("one-write", "trivial + one Redis write", "baseline", None),
        versus_trivial("naive", "naive receiver", "baseline", None),
        versus_trivial("healthz", "nbrelay GET /healthz", "baseline", None),
        p99_at_rate("naive", "naive receiver", "baseline", None),
        Measurement(
            "P2",
            "naive receiver: Losant /logs reads per callback",
            round(reads, 3),
            "reads/callback",
            better="lower",
            baseline="the naive receiver (one rq enqueue and one read per callback)",
            notes=f"{callbacks} callbacks at {NAIVE_RATE:.0f}/s over {NAIVE_NOTEBOOKS} notebooks,"
            " reads counted at the sandbox once its worker had run every job",
        ),
    ] + [
        Measurement(
            "baseline",
            "wrk's own CPU in its busiest run (closed loop)",
            round(max(r.cpu_per_thread for r in closed.values()), 2),
            "core/thread",
            baseline="the busiest wrk run; ≥ 0.9 would mean wrk, not the server, was the limit",
            client_bound=wrk_bound,
        )
    ]


def _curves(
    rounds: dict[str, list[WrkResult]], curves: dict[str, dict[float, OpenLoopResult]]
) -> list[Curve]:
    series = [
        Curve(
            CURVE_CHART,
            name,
            "offered req/s",
            "p99 ms",
            [(rate, round(result.p99_ms, 2)) for rate, result in sorted(by_rate.items())],
        )
        for name, by_rate in curves.items()
    ]
    series += [
        Curve(
            THROUGHPUT_CHART,
            name,
            "round",
            "req/s",
            [(number, round(r.requests_per_second)) for number, r in enumerate(results, 1)],
        )
        for name, results in rounds.items()
    ]
    return series


def _write_log(
    path: Path,
    rounds: dict[str, list[WrkResult]],
    curves: dict[str, dict[float, OpenLoopResult]],
) -> None:
    """Every raw figure of the run, for a reader who wants more than the table."""
    path.write_text(
        json.dumps(
            {
                "closed_loop_rounds": {
                    name: [vars(result) for result in results] for name, results in rounds.items()
                },
                "open_loop": {
                    name: {str(rate): vars(result) for rate, result in by_rate.items()}
                    for name, by_rate in curves.items()
                },
            },
            indent=2,
            default=str,
        )
    )
