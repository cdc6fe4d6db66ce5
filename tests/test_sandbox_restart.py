"""A restarted sandbox keeps notebooks, files and execution logs, and resolves the runs that
were in progress when it stopped."""

from __future__ import annotations

from pathlib import Path

import requests

from tests.support.http_server import ScriptedServer
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
