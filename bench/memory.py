"""P5: Redis memory per stored execution, and the resident memory of nbrelay's processes.

A fresh stack (2 RQ workers, web 2×4, the scheduler); 10,000 runs (quick: 2,000) are started
through nbrelay's API over 200 notebooks (quick: 40), 50 each, so every callback stays within
its notebook's hint burst and is kept in the event stream, as a normal callback is. They are
scripted to complete in `DURATION` and go the real way: callback, sync, stored terminal.

Redis's `INFO memory` `used_memory` is read once the notebooks exist and again once every run is
stored terminal (and `SETTLE` seconds more); the difference over the executions is the figure.
The notes break it down by kind of key: `MEMORY USAGE` (exact, `SAMPLES 0`) of every key a
`SCAN` finds, grouped by the first two segments of the key (`nbrelay:execution`, `rq:job`...),
per execution. The RSS of each gunicorn worker, each RQ worker and the scheduler is read after
the load (`bench.stack.rss_mb`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import cast

from bench import executions
from bench.report import Measurement, Outcome
from bench.stack import Stack, rss_mb

TARGET_BYTES = 2048  # Redis bytes per stored execution
TARGET_WEB_MB = 80.0  # per gunicorn worker
TARGET_WORKER_MB = 120.0  # per RQ worker
EXECUTIONS = 10_000
EXECUTIONS_QUICK = 2_000
PER_NOTEBOOK = 50  # within the per-notebook hint burst (60)
DURATION = 0.2  # seconds each run takes
SETTLE = 3.0  # seconds for the last syncs and follow-ups to finish
WAIT = 300.0  # seconds the executions may take to be stored terminal
BREAKDOWN_GROUPS = 6  # kinds of key named in the notes


def run(quick: bool, out: Path) -> Outcome:
    count = EXECUTIONS_QUICK if quick else EXECUTIONS
    with Stack(out) as stack:
        notebooks = [
            stack.notebook(f"memory-{i}", status="completed", durationSeconds=DURATION)
            for i in range(count // PER_NOTEBOOK)
        ]
        before = _used_memory(stack)
        ids = executions.start_many(stack, notebooks, count)
        executions.wait_stored_terminal(stack, ids, WAIT)
        time.sleep(SETTLE)
        used = _used_memory(stack) - before
        breakdown = _by_kind(stack)
        web = _rss(_gunicorn_workers(stack))
        workers = _rss(_own_pids(stack, "worker"))
        scheduler = _rss(_own_pids(stack, "scheduler"))
    mode = f"quick mode: {count} executions, not {EXECUTIONS}; " if quick else ""
    kinds = ", ".join(
        f"{kind} {size / count:.0f}"
        for kind, size in sorted(breakdown.items(), key=lambda item: -item[1])[:BREAKDOWN_GROUPS]
    )
    return Outcome(
        measurements=[
            Measurement(
                benchmark="P5",
                name=f"Redis bytes per stored execution ({count})",
                measured=round(used / count),
                unit="bytes",
                target=TARGET_BYTES,
                better="lower",
                notes=f"{mode}used_memory grew {used / 2**20:.1f} MiB; MEMORY USAGE per "
                f"execution by kind of key (bytes): {kinds}",
            ),
            _rss_measurement("gunicorn worker RSS (largest)", web, TARGET_WEB_MB),
            _rss_measurement("RQ worker RSS (largest)", workers, TARGET_WORKER_MB),
            _rss_measurement("scheduler RSS", scheduler, None),
        ]
    )


def _used_memory(stack: Stack) -> int:
    return int(cast(dict[str, int], stack.redis.info("memory"))["used_memory"])


def _by_kind(stack: Stack) -> dict[str, int]:
    """Bytes of every key, summed by the key's first two segments."""
    keys = list(stack.redis.scan_iter(count=1000))
    with stack.redis.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.memory_usage(key, samples=0)
        sizes = pipe.execute()
    kinds: dict[str, int] = {}
    for key, size in zip(keys, sizes, strict=True):
        kind = ":".join(key.split(":")[:2])
        kinds[kind] = kinds.get(kind, 0) + (size or 0)
    return kinds


def _own_pids(stack: Stack, prefix: str) -> list[int]:
    """The pids of the stack's own children named `prefix...` (not their children)."""
    return [c.pid for c in stack.children if c.name.startswith(prefix) and c.pid is not None]


def _gunicorn_workers(stack: Stack) -> list[int]:
    """The web's worker processes: the children of gunicorn's master."""
    masters = _own_pids(stack, "web")
    return [pid for pid in stack.pids("web") if pid not in masters]


def _rss(pids: list[int]) -> list[float]:
    return [mb for mb in map(rss_mb, pids) if mb is not None]


def _rss_measurement(name: str, sizes: list[float], target: float | None) -> Measurement:
    return Measurement(
        benchmark="P5",
        name=name,
        measured=round(max(sizes, default=0.0), 1),
        unit="MB",
        target=target,
        better="lower",
        notes="each: " + ", ".join(f"{mb:.1f}" for mb in sizes) + " MB, after the load",
    )
