"""A real `nbrelay sandbox` process for tests, with helpers that speak its API.

`SandboxProcess` starts the command on a free port with its own data folder and a known token,
waits until it answers and stops it with SIGTERM. The helpers wrap the Losant routes, and the
sandbox-only `/_sandbox/` routes through `SandboxClient`, so tests read as what they do.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import requests

from sandbox.client import SandboxClient
from service.runtime.deployment import sandbox_child
from service.runtime.processes import free_port, wait_until
from service.runtime.supervisor import Child

TERMINAL_STATUSES = frozenset({"completed", "errored", "timeout", "canceled"})

# The run logs as outputs: copied to the application's files, per notebook and run, and listed in
# outputInfo under their names (sandbox.outputs).
RUN_LOG_DIRECTORY = "/{{notebook.name}}/{{execution.runStartedAt}}"
LOG_OUTPUTS = [
    {
        "outputType": "executionResult",
        "fileName": name,
        "destinationDirectoryTemplate": RUN_LOG_DIRECTORY,
    }
    for name in ("result.log", "result.error.log")
]

EMPTY_NOTEBOOK: dict[str, Any] = {
    "cells": [],
    "metadata": {},
    "nbformat": 4,
    "nbformat_minor": 5,
}


class SandboxProcess:
    """One `nbrelay sandbox` child process. Extra CLI options go in `options`; with `cwd`, a
    relative `data_dir` is passed as given and read relative to that folder."""

    def __init__(
        self,
        data_dir: Path,
        *,
        token: str | None = None,
        port: int | None = None,
        options: Iterable[str] = (),
        cwd: Path | None = None,
    ) -> None:
        self.data_arg = Path(data_dir)
        self.cwd = cwd
        self.data_dir = (cwd / data_dir) if cwd else self.data_arg
        self.token = token or f"test-{uuid.uuid4().hex}"
        self.port = port or free_port()
        self.options = list(options)
        self.url = f"http://127.0.0.1:{self.port}"
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {self.token}"
        self.client = SandboxClient(self.url, self.token)
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}.log"
        self.child: Child | None = None

    def __repr__(self) -> str:
        return f"SandboxProcess(url={self.url})"

    # process

    def start(self, timeout: float = 20.0) -> SandboxProcess:
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self.child = sandbox_child(
            self.port,
            self.data_arg,
            self.token,
            os.environ,
            options=self.options,
            log_path=self.log_path,
            cwd=self.cwd,
        ).start()
        wait_until(self._answers, timeout, f"the sandbox on port {self.port}")
        return self

    def _answers(self) -> bool:
        if self.child is not None and not self.child.alive():
            raise RuntimeError(f"the sandbox exited with {self.child.exited()}: {self.log()}")
        return bool(self.client.health(timeout=1))

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM and wait; returns the exit status."""
        if self.child is None:
            return 0
        code = self.child.stop(timeout)
        self.child = None
        return code if code is not None else 0

    def restart(self) -> SandboxProcess:
        """Stop and start again on the same port with the same data folder and token."""
        self.stop()
        return self.start()

    def files_dir(self, application_id: str) -> Path:
        """The application's files folder: `applicationFile` inputs read from here."""
        path = self.data_dir / "applications" / str(application_id) / "files"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def fixtures_dir(self, application_id: str) -> Path:
        """The application's fixtures folder: data for dataTable/device/event inputs."""
        path = self.data_dir / "applications" / str(application_id) / "fixtures"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # raw HTTP

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 30)
        return self.http.request(method, self.url + path, **kwargs)

    def call(self, method: str, path: str, expected: int = 200, **kwargs: Any) -> Any:
        """A request that must answer `expected`; returns the parsed JSON body."""
        response = self.request(method, path, **kwargs)
        if response.status_code != expected:
            raise AssertionError(
                f"{method} {path}: expected {expected}, got {response.status_code}: "
                f"{response.text[:500]}"
            )
        return response.json()

    # sandbox-only routes

    def create_application(self, name: str | None = None, **settings: Any) -> str:
        """A new application (or an update of `id=...`); settings: maxAllowedRunMinutes,
        parallelRuns. Returns its id."""
        return self.client.create_application(name, **settings)

    def set_behaviour(self, application_id: str, notebook_id: str, **behaviour: Any) -> dict:
        """Script a notebook: status, durationSeconds, logsLatencySeconds, dropCallbacks,
        duplicateCallbacks, serverErrors, rateLimited, retryAfterSeconds, lostExecuteAnswers
        (see Contract 2)."""
        return self.client.set_behaviour(application_id, notebook_id, **behaviour)

    def clear_behaviour(self, application_id: str, notebook_id: str) -> dict:
        return self.client.clear_behaviour(application_id, notebook_id)

    def stats(self, application_id: str, notebook_id: str) -> dict:
        return self.client.stats(application_id, notebook_id)

    # Losant routes

    def create_notebook(
        self,
        application_id: str,
        name: str | None = None,
        notebook: dict | str | Path | None = None,
        inputs: list[dict] | None = None,
        **fields: Any,
    ) -> dict:
        """Create a notebook; with `notebook` (JSON dict, JSON text or a path) also upload it.
        Returns the notebook record."""
        body = {"name": name or f"nb-{uuid.uuid4().hex[:8]}", **fields}
        if inputs is not None:
            body["inputs"] = inputs
        record = self.call("POST", f"/applications/{application_id}/notebooks", 201, json=body)
        if notebook is not None:
            record = self.upload(application_id, record["id"], notebook)
        return record

    def upload(self, application_id: str, notebook_id: str, notebook: dict | str | Path) -> dict:
        if isinstance(notebook, Path):
            name, content = notebook.name, notebook.read_bytes()
        elif isinstance(notebook, dict):
            name, content = "notebook.ipynb", json.dumps(notebook).encode()
        else:
            name, content = "notebook.ipynb", notebook.encode()
        return self.call(
            "POST",
            _notebook_path(application_id, notebook_id, "/upload"),
            files={"jupyterFile": (name, content, "application/x-ipynb+json")},
        )

    def execute(self, application_id: str, notebook_id: str, **options: Any) -> str:
        """Start an execution (options: relativeTo, templateContext, callbackUrl, email);
        returns its id."""
        path = _notebook_path(application_id, notebook_id, "/execute")
        return self.call("POST", path, json=options)["executionId"]

    def logs(
        self, application_id: str, notebook_id: str, limit: int = 1000, since: int | None = None
    ) -> list[dict]:
        params: dict[str, Any] = {"limit": limit}
        if since is not None:
            params["since"] = since
        path = _notebook_path(application_id, notebook_id, "/logs")
        return self.call("GET", path, params=params)

    def execution(self, application_id: str, notebook_id: str, execution_id: str) -> dict:
        for record in self.logs(application_id, notebook_id):
            if record["id"] == execution_id:
                return record
        raise AssertionError(f"execution {execution_id} is not in the logs")

    def wait_for_status(
        self,
        application_id: str,
        notebook_id: str,
        execution_id: str,
        statuses: Iterable[str] = TERMINAL_STATUSES,
        timeout: float = 30.0,
    ) -> dict:
        """Poll `/logs` until the execution reaches one of `statuses`; returns its record."""
        wanted = set(statuses)

        def reached() -> dict | None:
            record = self.execution(application_id, notebook_id, execution_id)
            return record if record["status"] in wanted else None

        return wait_until(reached, timeout, f"execution {execution_id} to reach {sorted(wanted)}")

    def cancel(self, application_id: str, notebook_id: str, execution_id: str) -> dict:
        path = _notebook_path(application_id, notebook_id, "/cancelExecution")
        return self.call("POST", path, params={"executionId": execution_id})

    def losant_client(self):
        """Losant's official Python client, pointed at this sandbox."""
        from losant_rest import Client

        return Client(auth_token=self.token, url=self.url)


class SandboxApp(str):
    """An application id (usable anywhere a str id is) bound to its sandbox, with the helpers
    that take an application id already filled in."""

    sandbox: SandboxProcess

    def __new__(cls, application_id: str, sandbox: SandboxProcess) -> SandboxApp:
        app = super().__new__(cls, application_id)
        app.sandbox = sandbox
        return app

    @property
    def id(self) -> str:
        return str(self)

    def create_notebook(self, name: str | None = None, notebook=None, inputs=None, **fields):
        return self.sandbox.create_notebook(self.id, name, notebook, inputs, **fields)

    def set_behaviour(self, notebook_id: str, **behaviour: Any) -> dict:
        return self.sandbox.set_behaviour(self.id, notebook_id, **behaviour)

    def stats(self, notebook_id: str) -> dict:
        return self.sandbox.stats(self.id, notebook_id)

    def execute(self, notebook_id: str, **options: Any) -> str:
        return self.sandbox.execute(self.id, notebook_id, **options)

    def logs(self, notebook_id: str, limit: int = 1000, since: int | None = None) -> list[dict]:
        return self.sandbox.logs(self.id, notebook_id, limit, since)

    def wait_for_status(
        self,
        notebook_id: str,
        execution_id: str,
        statuses: Iterable[str] = TERMINAL_STATUSES,
        timeout: float = 30.0,
    ) -> dict:
        return self.sandbox.wait_for_status(self.id, notebook_id, execution_id, statuses, timeout)

    def cancel(self, notebook_id: str, execution_id: str) -> dict:
        return self.sandbox.cancel(self.id, notebook_id, execution_id)


def _notebook_path(application_id: str, notebook_id: str, suffix: str = "") -> str:
    return f"/applications/{application_id}/notebooks/{notebook_id}{suffix}"
