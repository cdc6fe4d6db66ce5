"""A restarted sandbox keeps notebooks, files and execution logs, and resolves the runs that
were in progress when it stopped."""

from __future__ import annotations

from pathlib import Path

import nbformat
import requests
from nbformat.v4 import new_code_cell, new_notebook

from sandbox.run_loop import RESTART_ERROR
from service.runtime.processes import wait_until
from tests.support.http_server import ScriptedServer
from tests.support.processes import alive
from tests.support.sandbox import EMPTY_NOTEBOOK, SandboxApp, SandboxProcess


def test_restart_keeps_state_and_resolves_interrupted_runs(
    tmp_path: Path, http_server: ScriptedServer
) -> None:
    sandbox = SandboxProcess(tmp_path / "data").start()
    try:
        app = SandboxApp(sandbox.create_application(parallelRuns=1), sandbox)
        notebook = app.create_notebook("kept", notebook=EMPTY_NOTEBOOK)
        app.set_behaviour(notebook["id"], status="completed", durationSeconds=0)
        finished = app.execute(notebook["id"])
        app.wait_for_status(notebook["id"], finished)
        app.set_behaviour(notebook["id"], status="completed", durationSeconds=60)
        interrupted = app.execute(notebook["id"], callbackUrl=f"{http_server.url}/cb")
        app.wait_for_status(notebook["id"], interrupted, ["inProgress"])
        queued = app.execute(notebook["id"])
        before = {e["id"]: e for e in app.logs(notebook["id"])}
        assert before[queued]["status"] == "queued"

        assert sandbox.stop() == 0
        sandbox.start()

        assert sandbox.call("GET", f"/applications/{app}/notebooks/{notebook['id']}")["name"] == (
            "kept"
        )
        file = requests.get(notebook["jupyterFileUrl"], timeout=10)
        assert file.status_code == 200 and file.json() == EMPTY_NOTEBOOK
        after = {e["id"]: e for e in app.logs(notebook["id"])}
        assert after[finished] == before[finished]
        resolved = after[interrupted]
        assert resolved["status"] == "errored"
        assert resolved["executionErrors"][-1]["name"] == "SandboxRestarted"
        (callback,) = http_server.wait_for_requests(1)
        assert callback.json()["execution"]["id"] == interrupted
        assert callback.json()["success"] is False
        # The queued run was not lost: it runs now (for real: behaviours live in memory).
        record = app.wait_for_status(notebook["id"], queued, timeout=60)
        assert record["runStartedAt"] > resolved["runStartedAt"]
    finally:
        sandbox.stop()


def test_sigterm_kills_running_kernels_and_restart_resolves_them(tmp_path: Path) -> None:
    sandbox = SandboxProcess(tmp_path / "data").start()
    try:
        app = SandboxApp(sandbox.create_application(), sandbox)
        pid_file = tmp_path / "kernel.pid"
        source = f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
        sleeper = nbformat.writes(new_notebook(cells=[new_code_cell(source + "time.sleep(600)")]))
        notebook = app.create_notebook("sleeper", notebook=sleeper)
        execution_id = app.execute(notebook["id"])
        wait_until(lambda: pid_file.exists() and pid_file.read_text(), 90, "the kernel")
        kernel = int(pid_file.read_text())

        assert sandbox.stop() == 0
        assert wait_until(lambda: not alive(kernel), 10, "the kernel to be gone")

        sandbox.start()
        record = app.wait_for_status(notebook["id"], execution_id, timeout=10)
        assert record["status"] == "errored"
        assert record["executionErrors"] == [RESTART_ERROR]
    finally:
        sandbox.stop()
