"""nbrelay's own processes for end-to-end tests: web (gunicorn), workers and the scheduler as
real subprocesses against a Redis and a sandbox application.

`ServiceStack` knows the settings it gave its processes (`env`), can build in-process
`Components` on the same Redis, talks to the API with the right token, and can kill or restart
single processes (each a `service.runtime.supervisor.Child`). Timings are set low (reconciler
every 0.3 s, sync lease 2 s, retries after 1 s) so that failure paths finish quickly; pass `env`
to change any setting. Watched notebooks (a pipeline file's, `NBRELAY_WATCH`) are polled at the
default intervals: a test that relies on polls sets `NBRELAY_POLL_INTERVAL` (and the busy one).
"""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import requests

from service.composition import Components
from service.config import Settings
from service.events import tokens
from service.runtime.deployment import Deployment
from service.runtime.processes import free_port, wait_until
from service.runtime.supervisor import Child, nbrelay_command, stop_together

FAST = {
    "NBRELAY_RECONCILE_INTERVAL": "0.3",
    "NBRELAY_SYNC_LEASE": "2",
    "NBRELAY_SYNC_RETRY_INTERVALS": "1,1,1",
}


class ServiceStack:
    """web + workers + scheduler of nbrelay, against `redis_url` and a sandbox application."""

    def __init__(
        self,
        redis_url: str,
        sandbox_url: str,
        sandbox_token: str,
        application_id: str,
        log_dir: Path,
        *,
        workers: int = 1,
        scheduler: bool = True,
        env: Mapping[str, str] | None = None,
        web_options: tuple[str, ...] = (),
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.application_id = application_id
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.metrics_dir = self.log_dir / "metrics"
        self.metrics_dir.mkdir(exist_ok=True)
        self.env = {
            **os.environ,
            "NBRELAY_REDIS_URL": redis_url,
            "LOSANT_API_URL": sandbox_url,
            "LOSANT_API_TOKEN": sandbox_token,
            "LOSANT_APPLICATION_ID": application_id,
            "NBRELAY_PUBLIC_URL": self.url,
            "NBRELAY_SECRET": secrets.token_urlsafe(24),
            "NBRELAY_API_TOKEN": secrets.token_urlsafe(24),
            "NBRELAY_INGEST_TOKEN": secrets.token_urlsafe(24),
            "NBRELAY_METRICS_TOKEN": secrets.token_urlsafe(24),
            "PROMETHEUS_MULTIPROC_DIR": str(self.metrics_dir),
            "WEB_CONCURRENCY": "2",
            **FAST,
            **(env or {}),
        }
        self.settings = Settings.from_env(self.env, dotenv_path=None)
        self.api = requests.Session()
        self.api.headers["Authorization"] = f"Bearer {self.env['NBRELAY_API_TOKEN']}"
        self.deployment = Deployment(self.env, port=self.port, log_dir=self.log_dir)
        self.web: Child | None = None
        self.workers: list[Child] = []
        self.scheduler: Child | None = None
        self._web_options = web_options
        self._workers_wanted = workers
        self._scheduler_wanted = scheduler

    def start(self) -> ServiceStack:
        self.web = self.deployment.web(*self._web_options).start()
        for _ in range(self._workers_wanted):
            self.start_worker()
        if self._scheduler_wanted:
            self.start_scheduler()
        wait_until(self._ready, 30, f"nbrelay web on port {self.port}")
        return self

    def _ready(self) -> bool:
        assert self.web is not None
        if not self.web.alive():
            raise RuntimeError(f"nbrelay web exited: {self.web.log()[-2000:]}")
        return self.deployment.ready()

    def start_worker(self) -> Child:
        worker = self.deployment.worker().start()
        self.workers.append(worker)
        return worker

    def start_scheduler(self) -> Child:
        self.scheduler = self.deployment.scheduler().start()
        return self.scheduler

    def stop(self) -> None:
        """SIGTERM every process at once, then wait for each (SIGKILL after a timeout)."""
        self.api.close()
        running = [p for p in (self.scheduler, *self.workers, self.web) if p and p.alive()]
        stop_together(running, timeout=20.0)

    def logs(self) -> str:
        """Every process's log, for assertion messages."""
        return "\n".join(
            f"--- {p.name}\n{p.log()[-3000:]}"
            for p in [self.web, *self.workers, self.scheduler]
            if p is not None
        )

    # talking to it

    def components(self) -> Components:
        """nbrelay's components in this process, on the stack's Redis (close them after use)."""
        return Components.from_settings(self.settings)

    def callback_url(self, notebook_id: str, **claims: Any) -> str:
        token = tokens.sign(
            self.settings.signing_secret, self.application_id, notebook_id, **claims
        )
        return tokens.callback_url(self.url, token)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.api.get(self.url + path, timeout=10, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.api.post(self.url + path, timeout=30, **kwargs)

    def metrics(self) -> str:
        """The Prometheus text of `/metrics`, fetched with NBRELAY_METRICS_TOKEN."""
        headers = {"Authorization": f"Bearer {self.env['NBRELAY_METRICS_TOKEN']}"}
        response = requests.get(f"{self.url}/metrics", headers=headers, timeout=10)
        response.raise_for_status()
        return response.text

    def execution(self, execution_id: str) -> dict | None:
        response = self.get(f"/api/executions/{execution_id}")
        return response.json() if response.status_code == 200 else None

    def wait_for_status(
        self, execution_id: str, statuses: set[str] | str, timeout: float = 30.0
    ) -> dict:
        """Poll the API until the stored execution has one of `statuses`."""
        wanted = {statuses} if isinstance(statuses, str) else set(statuses)

        def reached() -> dict | None:
            record = self.execution(execution_id)
            return record if record and record["status"] in wanted else None

        try:
            return wait_until(reached, timeout, f"execution {execution_id} to be {sorted(wanted)}")
        except TimeoutError as exc:
            stored = self.execution(execution_id)
            raise AssertionError(f"{exc}; stored: {stored}\n{self.logs()}") from None

    def run_cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        """`nbrelay <args>` with this stack's settings."""
        return subprocess.run(
            nbrelay_command(*args),
            env=self.env,
            cwd=self.log_dir,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
