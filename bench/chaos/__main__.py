"""`python -m bench.chaos [--long] [--minutes N]`: the fault soak. Deploys nbrelay as production
would on this machine, drives a pipeline and rule load through it while faults are injected on a
schedule, then waits for it to catch up and checks that nothing was lost, doubled or left stuck.

Prints the fault log as it goes and a table at the end; writes `bench/results/chaos-<UTC>/`
(results.json with the table, the fault log and the settings; every process's log). Exits 1
when a "must" fails, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from bench import summary
from bench.chaos.audit import Audit, Row
from bench.chaos.deployment import ChaosDeployment
from bench.chaos.faults import PLANNED_FAULTS, Faults
from bench.chaos.scenario import Behaviours, Load, pipeline_file, webhook_secret
from bench.chaos.sinks import MailSink, WebhookSink
from service.runtime.processes import free_port

RESULTS = Path(__file__).resolve().parent.parent / "results"
QUICK_MINUTES, LONG_MINUTES = 5.0, 60.0
CONVERGE_DEADLINE = 600.0  # seconds nbrelay may take to catch up once the faults stop
REDIS_EVERY_LONG = 600.0  # seconds between two Redis kills in the long soak
# Production's settings, except the leases that decide how soon a dead worker's work is taken
# over (shorter, so the soak's convergence does not wait minutes on each kill).
SETTINGS = {
    "NBRELAY_ACTION_LEASE": "30",
    "NBRELAY_SYNC_LEASE": "10",
    "NBRELAY_SYNC_RETRY_INTERVALS": "5,15,60",
    "WEB_CONCURRENCY": "2",
}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # SIGTERM (and SIGINT, even where a shell started the soak in the background) stops it
    # cleanly: every process it started is stopped on the way out.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _interrupted)
    minutes = args.minutes or (LONG_MINUTES if args.long else QUICK_MINUTES)
    folder = RESULTS / ("chaos-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"))
    folder.mkdir(parents=True)
    machine = summary.machine()  # now: the commit that runs, whatever happens to the tree meanwhile
    print(f"chaos: {minutes:g} min of load and faults; logs in {folder}", flush=True)
    deployment = ChaosDeployment(folder, SETTINGS)
    webhook = WebhookSink(free_port()).start()
    mail = MailSink(free_port()).start()
    try:
        deployment.start_sandbox()
        behaviours = Behaviours(deployment)
        behaviours.create()
        pipelines = folder / "pipelines.yaml"
        pipelines.write_text(pipeline_file(webhook.url, webhook_secret(), mail.port))
        deployment.start(pipelines)
        load = Load(deployment, behaviours)
        redis_first = minutes * 60 * (0.4 if not args.long else 0.15)
        faults = Faults(
            deployment, behaviours, webhook, mail,
            redis_every=REDIS_EVERY_LONG if args.long else minutes * 60 * 10,
            redis_first=redis_first,
        )  # fmt: skip
        load.start()
        faults.start()
        time.sleep(minutes * 60)
        load.stop()
        faults.stop()
        print("chaos: load and faults stopped; waiting for nbrelay to catch up", flush=True)
        audit = Audit(deployment, behaviours, faults.log, load.run_ids,
                      {"hook": webhook, "mail": mail})  # fmt: skip
        converged = audit.converge(CONVERGE_DEADLINE)
        assert deployment.balancer is not None
        rows = audit.rows(converged, deployment.balancer.callback_answers())
        rows += [Row("load", f"starts {what}", n) for what, n in sorted(load.outcomes.items())]
        rows.append(Row("load", "requests no web answered (502)", deployment.balancer.unanswered))
        rows += _fault_rows(faults)
    finally:
        deployment.stop()
        webhook.stop()
        mail.stop()
    failed = [row for row in rows if row.must is False]
    report = {
        "machine": machine,
        "command": " ".join(["python -m bench.chaos", *sys.argv[1:]]),
        "minutes": minutes,
        "settings": SETTINGS,
        "table": [row.to_json() for row in rows],
        "faults": [fault.to_json() for fault in faults.log.faults],
        "passed": not failed,
    }
    (folder / "results.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    print()
    print(_table(rows))
    print(f"\nresults: {folder / 'results.json'}")
    if failed:
        print("chaos: FAILED: " + "; ".join(f"{r.name} = {r.value}" for r in failed))
        return 1
    print("chaos: every must holds")
    return 0


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _fault_rows(faults: Faults) -> list[Row]:
    """How often each fault happened: each one the soak plans at least once, and no process
    exiting on its own and no fault failing to happen."""
    counts = Counter(fault.kind for fault in faults.log.faults)
    rows = [Row("faults", kind, counts[kind], counts[kind] > 0) for kind in PLANNED_FAULTS]
    for kind in ("exited on its own", "fault failed"):
        examples = [f.detail for f in faults.log.faults if f.kind == kind]
        rows.append(Row("faults", kind, counts[kind], not examples, examples))
    rows += [
        Row("faults", kind, n)
        for kind, n in counts.items()
        if kind not in PLANNED_FAULTS and kind not in ("exited on its own", "fault failed")
    ]
    return rows


def _table(rows: list[Row]) -> str:
    width = max(len(f"{r.group}: {r.name}") for r in rows)
    lines = []
    for row in rows:
        verdict = "" if row.must is None else ("  ✓" if row.must else "  ✗ MUST FAIL")
        lines.append(f"{row.group + ': ' + row.name:<{width}}  {row.value}{verdict}")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__)
    parser.add_argument("--long", action="store_true", help="the long soak (60 min)")
    parser.add_argument("--minutes", type=_minutes, help="minutes of load and faults")
    return parser


def _minutes(value: str) -> float:
    try:
        minutes = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of minutes") from None
    if not 0 < minutes <= 24 * 60:
        raise argparse.ArgumentTypeError("minutes must be more than 0 and at most 1440")
    return minutes


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt as stopped:
        print(f"chaos: stopped ({stopped}); every process it started is stopped", file=sys.stderr)
        sys.exit(130)
