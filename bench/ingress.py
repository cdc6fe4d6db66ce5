"""Benchmark: callback ingress of nbrelay against a baseline measured in the same run.

Starts a private Redis, the sandbox, and nbrelay's web (gunicorn, 2 workers), one RQ worker and
the scheduler; then sends the same number of requests, from the same client threads, to

- `GET /healthz` (baseline: the web stack with no work behind it), and
- `POST /callbacks/<token>` (verify the token, record the event in Redis, mark the notebook dirty,
  enqueue its sync, answer 202),

and prints throughput and latency percentiles of each, plus how many `/logs` reads the burst of
callbacks caused on the sandbox (coalescing).

Run: `.venv/bin/python -m bench.ingress [--requests N]`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from service import keys
from service.runtime.embedded_redis import EmbeddedRedis
from service.runtime.processes import wait_until
from tests.support.sandbox import SandboxApp, SandboxProcess
from tests.support.stack import ServiceStack

CALLBACK_BODY = json.dumps({"success": True, "notebook": {"name": "bench"}, "execution": {}})


def load(method: str, url: str, total: int, threads: int, body: str | None = None) -> dict:
    """Send `total` requests from `threads` keep-alive sessions; latencies in milliseconds."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    share = [total // threads + (1 if i < total % threads else 0) for i in range(threads)]

    def worker(count: int) -> None:
        session = requests.Session()
        mine: list[float] = []
        codes: dict[int, int] = {}
        for _ in range(count):
            started = time.perf_counter()
            response = session.request(method, url, data=body, timeout=30)
            mine.append((time.perf_counter() - started) * 1000)
            codes[response.status_code] = codes.get(response.status_code, 0) + 1
        with lock:
            latencies.extend(mine)
            for code, n in codes.items():
                statuses[code] = statuses.get(code, 0) + n

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(worker, share))
    elapsed = time.perf_counter() - started
    quantiles = statistics.quantiles(latencies, n=100)
    return {
        "rps": total / elapsed,
        "p50": quantiles[49],
        "p99": quantiles[98],
        "statuses": statuses,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=16)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        redis_server = EmbeddedRedis(root / "redis").start()
        sandbox = SandboxProcess(root / "sandbox").start()
        stack = None
        try:
            app = SandboxApp(sandbox.create_application("bench"), sandbox)
            notebook = app.create_notebook("bench")
            app.set_behaviour(notebook["id"], status="completed", durationSeconds=0.01)
            stack = ServiceStack(
                redis_server.url, sandbox.url, sandbox.token, app.id, root / "stack"
            ).start()
            callback_url = stack.callback_url(notebook["id"])

            baseline = load("GET", f"{stack.url}/healthz", args.requests, args.threads)
            ingress = load("POST", callback_url, args.requests, args.threads, CALLBACK_BODY)
            redis = stack.components().redis
            wait_until(lambda: redis.zcard(keys.dirty_notebooks()) == 0, 60, "syncs to drain")
            logs_reads = app.stats(notebook["id"])["requests"].get("logs", 0)
        finally:
            if stack is not None:
                stack.stop()
            sandbox.stop()
            redis_server.stop()

    print(f"{args.requests} requests per row, {args.threads} client threads, same machine\n")
    print(f"| {'endpoint':<34} | {'req/s':>7} | {'p50 ms':>7} | {'p99 ms':>7} | statuses |")
    print(f"|{'-' * 36}|{'-' * 9}|{'-' * 9}|{'-' * 9}|----------|")
    for name, row in (("GET /healthz (baseline)", baseline), ("POST /callbacks/<token>", ingress)):
        print(
            f"| {name:<34} | {row['rps']:>7.0f} | {row['p50']:>7.1f} | {row['p99']:>7.1f} "
            f"| {row['statuses']} |"
        )
    print(f"\ncallback throughput vs baseline: {ingress['rps'] / baseline['rps']:.0%}")
    print(f"/logs reads caused by {args.requests} callbacks of one notebook: {logs_reads}")


if __name__ == "__main__":
    main()
