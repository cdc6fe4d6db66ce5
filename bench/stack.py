"""One private nbrelay for a benchmark: Redis (with AOF, as in production), the sandbox as
Losant, and nbrelay's web, workers and scheduler as separate processes, all on this machine.

    with Stack(root, workers=2) as stack:
        notebook = stack.notebook("a", status="completed", durationSeconds=0.01)
        url = stack.callback_url(notebook)

Everything the stack starts is stopped when the `with` block ends; the children's output is in
`<root>/<name>.log`.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from redis import Redis

from sandbox.client import SandboxClient
from service.events import tokens
from service.losant import LosantClient
from service.runtime.deployment import Deployment, sandbox_child
from service.runtime.embedded_redis import EmbeddedRedis
from service.runtime.processes import free_port, wait_until
from service.runtime.supervisor import Child, stop_together

START_TIMEOUT = 60.0  # seconds a process of the stack may take to answer
STOP_TIMEOUT = 30.0


class Stack:
    """`workers` RQ workers, a gunicorn web of `web_workers` processes × `web_threads` threads,
    the scheduler (unless `scheduler=False`), and `env` added to nbrelay's environment."""

    def __init__(
        self,
        root: Path,
        *,
        workers: int = 2,
        web_workers: int = 2,
        web_threads: int = 4,
        scheduler: bool = True,
        parallel_runs: int = 1000,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.root = Path(root)
        self.workers = workers
        self.web_workers = web_workers
        self.web_threads = web_threads
        self.with_scheduler = scheduler
        self.parallel_runs = parallel_runs
        self.extra_env = dict(env or {})
        self.secret = secrets.token_urlsafe(24)
        self.sandbox_token = secrets.token_urlsafe(16)
        self.children: list[Child] = []
        self.redis_server: EmbeddedRedis | None = None

    def __enter__(self) -> Stack:
        try:
            self._start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _start(self) -> None:
        self.redis_server = EmbeddedRedis(self.root / "redis").start()
        self.redis = Redis.from_url(self.redis_server.url, decode_responses=True)
        sandbox_port = free_port()
        self.sandbox_url = f"http://127.0.0.1:{sandbox_port}"
        self.children.append(
            sandbox_child(
                sandbox_port,
                self.root / "sandbox",
                self.sandbox_token,
                os.environ,
                log_path=self.root / "sandbox.log",
            ).start()
        )
        self.sandbox = SandboxClient(self.sandbox_url, self.sandbox_token)
        wait_until(lambda: self.sandbox.health(timeout=1), START_TIMEOUT, "the sandbox")
        self.application_id = self.sandbox.create_application(
            "bench", parallelRuns=self.parallel_runs
        )
        self.losant = LosantClient(self.sandbox_url, self.sandbox_token)
        port = free_port()
        self.env = {
            **os.environ,
            "NBRELAY_REDIS_URL": self.redis_server.url,
            "LOSANT_API_URL": self.sandbox_url,
            "LOSANT_API_TOKEN": self.sandbox_token,
            "LOSANT_APPLICATION_ID": self.application_id,
            "NBRELAY_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "NBRELAY_SECRET": self.secret,
            "NBRELAY_API_TOKEN": secrets.token_urlsafe(24),
            "NBRELAY_LOG_LEVEL": "warning",
            "WEB_CONCURRENCY": str(self.web_workers),
            "NBRELAY_WEB_THREADS": str(self.web_threads),
            **self.extra_env,
        }
        self.deployment = Deployment(self.env, port=port, log_dir=self.root)
        self.url = self.deployment.url
        self.children.append(self.deployment.web().start())
        for _ in range(self.workers):
            self.children.append(self.deployment.worker().start())
        if self.with_scheduler:
            self.children.append(self.deployment.scheduler().start())
        wait_until(self.deployment.ready, START_TIMEOUT, "nbrelay web")

    def __exit__(self, *exc: object) -> None:
        stop_together(self.children, timeout=STOP_TIMEOUT)
        self.children.clear()
        for client in ("sandbox", "losant", "redis"):
            if hasattr(self, client):
                getattr(self, client).close()
        if self.redis_server is not None:
            self.redis_server.stop()
            self.redis_server = None

    def notebook(self, name: str, **behaviour: Any) -> str:
        """A new notebook of the stack's application; with `behaviour` (see the sandbox's
        `behaviours` module: status, durationSeconds, logsLatencySeconds...), its runs are
        scripted."""
        notebook_id = self.losant.create_notebook(self.application_id, {"name": name}).id
        if behaviour:
            self.sandbox.set_behaviour(self.application_id, notebook_id, **behaviour)
        return notebook_id

    def callback_url(
        self, notebook_id: str, *, run: str | None = None, step: str | None = None
    ) -> str:
        token = tokens.sign(self.secret, self.application_id, notebook_id, run=run, step=step)
        return tokens.callback_url(self.url, token)

    def pids(self, name_prefix: str) -> list[int]:
        """The pids of the children whose name starts with `name_prefix` ("web", "worker",
        "scheduler", "sandbox"), and of their own children (gunicorn's workers)."""
        found = []
        for child in self.children:
            if child.name.startswith(name_prefix) and child.pid is not None:
                found.append(child.pid)
                found.extend(_children_of(child.pid))
        return found


def _children_of(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    try:
        return [int(p) for p in path.read_text().split()]
    except OSError:
        return []


def rss_mb(pid: int) -> float | None:
    """Resident memory of a process in MB (None once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None
