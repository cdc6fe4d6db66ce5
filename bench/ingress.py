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
import os
import secrets
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from redis import Redis

from sandbox.client import SandboxClient
from service import keys
from service.events import tokens
from service.losant import LosantClient
from service.runtime.deployment import Deployment, sandbox_child
from service.runtime.embedded_redis import EmbeddedRedis
from service.runtime.processes import free_port, wait_until
from service.runtime.supervisor import stop_together

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
        sandbox_port, token = free_port(), secrets.token_urlsafe(16)
        sandbox = sandbox_child(sandbox_port, root / "sandbox", token, os.environ).start()
        sandbox_url = f"http://127.0.0.1:{sandbox_port}"
        control = SandboxClient(sandbox_url, token)
        children = [sandbox]
        try:
            wait_until(lambda: control.health(timeout=1), 30, "the sandbox")
            app = control.create_application("bench")
            with LosantClient(sandbox_url, token) as losant:
                notebook = losant.create_notebook(app, {"name": "bench"}).id
            control.set_behaviour(app, notebook, status="completed", durationSeconds=0.01)
            secret, port = secrets.token_urlsafe(24), free_port()
            env = {
                **os.environ,
                "NBRELAY_REDIS_URL": redis_server.url,
                "LOSANT_API_URL": sandbox_url,
                "LOSANT_API_TOKEN": token,
                "LOSANT_APPLICATION_ID": app,
                "NBRELAY_PUBLIC_URL": f"http://127.0.0.1:{port}",
                "NBRELAY_SECRET": secret,
                "NBRELAY_API_TOKEN": secrets.token_urlsafe(24),
                "WEB_CONCURRENCY": "2",
            }
            deployment = Deployment(env, port=port, log_dir=root)
            children += [c.start() for c in (deployment.web(), deployment.worker())]
            children.append(deployment.scheduler().start())
            wait_until(deployment.ready, 30, "nbrelay web")
            callback_url = tokens.callback_url(deployment.url, tokens.sign(secret, app, notebook))

            baseline = load("GET", f"{deployment.url}/healthz", args.requests, args.threads)
            ingress = load("POST", callback_url, args.requests, args.threads, CALLBACK_BODY)
            redis = Redis.from_url(redis_server.url)
            wait_until(lambda: redis.zcard(keys.dirty_notebooks()) == 0, 60, "syncs to drain")
            redis.close()
            logs_reads = control.stats(app, notebook)["requests"].get("logs", 0)
        finally:
            control.close()
            stop_together(children, timeout=30)
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
