"""nbrelay deployed for the soak as production would run it on one machine: Redis with its
append-only file (`appendfsync everysec`, `maxmemory-policy noeviction`), two web processes
behind the load balancer, three workers, two schedulers (one leads, the other waits), and the
sandbox as Losant. Every process can be killed and started again; Redis restarts from its
append-only file on the same port.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import requests
from redis import Redis

from bench.chaos.balancer import Balancer
from sandbox.client import SandboxClient
from service import keys
from service.losant import LosantClient
from service.runtime.deployment import Deployment, sandbox_child
from service.runtime.embedded_redis import EmbeddedRedis
from service.runtime.processes import free_port, wait_until
from service.runtime.supervisor import Child, stop_together

START_TIMEOUT = 60.0  # seconds a process may take to answer
STOP_TIMEOUT = 30.0
WEBS, WORKERS, SCHEDULERS = 2, 3, 2


class ChaosDeployment:
    def __init__(self, root: Path, settings: Mapping[str, str]) -> None:
        """`settings`: nbrelay environment variables beyond the connection ones (the soak's
        pipeline file, shorter leases...)."""
        self.root = root
        self.settings = dict(settings)
        self.secret = secrets.token_urlsafe(24)
        self.api_token = secrets.token_urlsafe(24)
        self.sandbox_token = secrets.token_urlsafe(16)
        self.redis_server = EmbeddedRedis(root / "redis", port=free_port())
        self.webs: list[Child] = []
        self.web_ports: list[int] = []
        self.workers: list[Child] = []
        self.schedulers: list[Child] = []
        self.others: list[Child] = []
        self.balancer: Balancer | None = None
        # A child is sent SIGTERM when the thread that started it ends (see `Child`), so every
        # restart during the soak is done by this one thread, which lives as long as the soak.
        self._starter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="starter")

    # start and stop

    def start_sandbox(self) -> None:
        """Redis and the sandbox, so that the scenario can create its notebooks; then `start`."""
        self.redis_server.start()
        self.redis = Redis.from_url(self.redis_server.url, decode_responses=True)
        port = free_port()
        self.sandbox_url = f"http://127.0.0.1:{port}"
        sandbox = sandbox_child(
            port,
            self.root / "sandbox",
            self.sandbox_token,
            os.environ,
            log_path=self.root / "sandbox.log",
        )
        self.others.append(sandbox.start())
        self.sandbox_data = self.root / "sandbox"
        self.sandbox = SandboxClient(self.sandbox_url, self.sandbox_token)
        wait_until(lambda: self.sandbox.health(timeout=1), START_TIMEOUT, "the sandbox")
        self.application_id = self.sandbox.create_application("chaos", parallelRuns=1000)
        self.losant = LosantClient(self.sandbox_url, self.sandbox_token)

    def start(self, pipeline_file: Path) -> None:
        public_port = free_port()
        self.url = f"http://127.0.0.1:{public_port}"
        self.env = {
            **os.environ,
            "NBRELAY_REDIS_URL": self.redis_server.url,
            "LOSANT_API_URL": self.sandbox_url,
            "LOSANT_API_TOKEN": self.sandbox_token,
            "LOSANT_APPLICATION_ID": self.application_id,
            "NBRELAY_PUBLIC_URL": self.url,
            "NBRELAY_SECRET": self.secret,
            "NBRELAY_API_TOKEN": self.api_token,
            "NBRELAY_PIPELINES": str(pipeline_file),
            "NBRELAY_LOG_LEVEL": "info",
            **self.settings,
        }
        for number in range(1, WEBS + 1):
            port = free_port()
            deployment = Deployment(self.env, port=port, log_dir=self.root / f"web-{number}")
            deployment.log_dir.mkdir(parents=True, exist_ok=True)  # type: ignore[union-attr]
            web = deployment.web()
            web.name = f"web {number}"
            self.webs.append(web.start())
            self.web_ports.append(port)
        self.balancer = Balancer(public_port, self.web_ports).start()
        processes = Deployment(self.env, log_dir=self.root)
        self.workers = [processes.worker().start() for _ in range(WORKERS)]
        self.schedulers = [processes.scheduler().start() for _ in range(SCHEDULERS)]
        for port in self.web_ports:
            wait_until(partial(self.web_ready, port), START_TIMEOUT, f"web on {port}")

    def stop(self) -> None:
        stop_together(self.webs + self.workers + self.schedulers + self.others, STOP_TIMEOUT)
        if self.balancer is not None:
            self.balancer.stop()
        for client in ("sandbox", "losant", "redis"):
            if hasattr(self, client):
                getattr(self, client).close()
        self.redis_server.stop()
        self._starter.shutdown()

    # what the faults need

    def web_ready(self, port: int) -> bool:
        return requests.get(f"http://127.0.0.1:{port}/readyz", timeout=2).ok

    def leading_scheduler(self) -> Child | None:
        """The scheduler that holds the lead now (its pid is in the leader key's value)."""
        try:
            holder = self.redis.get(keys.scheduler_leader())
        except Exception:  # noqa: BLE001 - Redis down: nobody can lead
            return None
        if not holder:
            return None
        pid = int(str(holder).rsplit("-", 2)[-2])
        return next((s for s in self.schedulers if s.pid == pid), None)

    def kill_redis(self) -> None:
        self.redis_server.kill()

    def restart_redis(self) -> float:
        """Start Redis again from its append-only file; seconds until it answered."""
        began = time.monotonic()
        self.redis_server.start()
        return time.monotonic() - began

    def start_child(self, child: Child) -> None:
        """Start a child, or start it again after it was killed (it keeps its name and log)."""
        self._starter.submit(child.start).result()
