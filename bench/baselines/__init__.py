"""The baselines nbrelay's ingest is measured against (`trivial`, `naive`), served by gunicorn
with nbrelay's own web settings (`deploy/gunicorn.conf.py` imports
`service.web.gunicorn_settings`: the same workers, threads, worker class, keep-alive and
access log), so that only the app differs."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import requests

from service.runtime.processes import free_port, wait_until
from service.runtime.supervisor import Child, stop_together

GUNICORN_CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "gunicorn.conf.py"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


class Served:
    """`app` ("bench.baselines.trivial:app") under gunicorn on a free port, with `env` (which
    carries WEB_CONCURRENCY and NBRELAY_WEB_THREADS); with `worker` (the arguments of a python
    process), one worker process beside it. Output in `<log_dir>/<name>[-worker].log`."""

    def __init__(
        self,
        name: str,
        app: str,
        env: Mapping[str, str],
        log_dir: Path,
        *,
        worker: Sequence[str] = (),
    ) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.env = {**env, "PROMETHEUS_MULTIPROC_DIR": str(_empty_dir(log_dir / f"{name}-metrics"))}
        argv = [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONFIG)]
        argv += ["--bind", f"127.0.0.1:{port}", "--name", f"bench-{name}", app]
        self.children = [Child(name, argv, self.env, log_path=log_dir / f"{name}.log")]
        if worker:
            log_path = log_dir / f"{name}-worker.log"
            argv = [sys.executable, *worker]
            self.children.append(Child(f"{name} worker", argv, self.env, log_path=log_path))

    def __enter__(self) -> Served:
        try:
            for child in self.children:
                child.start()
            wait_until(self._answers, START_TIMEOUT, f"{self.children[0].name} (gunicorn)")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        stop_together(self.children, timeout=STOP_TIMEOUT)

    def _answers(self) -> bool:
        requests.get(self.url, timeout=1)  # any answer, even a 404, means a worker is up
        return True


def _empty_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for leftover in path.iterdir():
        leftover.unlink()
    return path
