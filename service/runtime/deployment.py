"""nbrelay's processes on one machine, planned in one place: the sandbox, web (gunicorn),
workers and schedulers, each a `Child` running an `nbrelay` command.

`nbrelay up` starts them under its supervisor; the end-to-end tests and the benchmarks start
their own (with faster timings, their output in log files) and kill or restart single ones.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path

import requests

from service import defaults
from service.runtime.supervisor import Child, nbrelay_command

SANDBOX_TOKEN_VARIABLE = "NBRELAY_SANDBOX_TOKEN"


def sandbox_child(
    port: int,
    data_dir: Path,
    token: str,
    env: Mapping[str, str],
    *,
    options: Iterable[str] = (),
    log_path: Path | None = None,
    cwd: Path | None = None,
) -> Child:
    """`nbrelay sandbox` on 127.0.0.1:`port` with its data in `data_dir`, requiring `token`."""
    argv = nbrelay_command(
        "sandbox", "--host", "127.0.0.1", "--port", str(port), "--data", str(data_dir), *options
    )
    return Child(
        "sandbox", argv, {**env, SANDBOX_TOKEN_VARIABLE: token}, log_path=log_path, cwd=cwd
    )


class Deployment:
    """The web, worker and scheduler processes of one nbrelay, sharing the settings in `env`.

    With `log_dir`, each child's output goes to `<log_dir>/<name>.log`.
    """

    def __init__(
        self,
        env: Mapping[str, str],
        *,
        host: str = defaults.HOST,
        port: int = defaults.PORT,
        log_dir: Path | None = None,
    ) -> None:
        self.env = dict(env)
        self.host = host
        self.port = port
        self.url = f"http://{host}:{port}"
        self.log_dir = log_dir
        self._counts: Counter[str] = Counter()

    def web(self, *options: str) -> Child:
        """`nbrelay web` on host:port, with further `options` (e.g. `--admin-bind`)."""
        return self._child("web", "web", "--host", self.host, "--port", str(self.port), *options)

    def worker(self) -> Child:
        return self._child("worker", "worker")

    def scheduler(self) -> Child:
        return self._child("scheduler", "scheduler")

    def ready(self) -> bool:
        """Whether the web process answers `/readyz` (Redis reachable)."""
        return requests.get(f"{self.url}/readyz", timeout=defaults.PROBE_TIMEOUT).ok

    def _child(self, role: str, *args: str) -> Child:
        """A child not started yet: workers are numbered, a second web or scheduler too."""
        self._counts[role] += 1
        number = self._counts[role]
        name = f"{role} {number}" if role == "worker" or number > 1 else role
        log_path = self.log_dir / f"{name.replace(' ', '-')}.log" if self.log_dir else None
        return Child(name, nbrelay_command(*args), self.env, log_path=log_path)
