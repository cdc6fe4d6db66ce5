"""The sandbox's applications, API tokens with Losant's scopes, job logs and export throttle."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests

from sandbox.client import SandboxClient
from sandbox.errors import Forbidden
from service.runtime.processes import wait_until
from tests.support.http_server import ScriptedServer
from tests.support.sandbox import SandboxApp, SandboxProcess

UNKNOWN = "0123456789abcdef01234567"


def _as(
    sandbox: SandboxProcess, token: str, method: str, path: str, **kwargs: Any
) -> requests.Response:
    kwargs.setdefault("timeout", 30)
    headers = {"Authorization": f"Bearer {token}"}
    return requests.request(method, sandbox.url + path, headers=headers, **kwargs)


def _token(sandbox: SandboxProcess, *scopes: str) -> str:
    token = f"scoped-{uuid.uuid4().hex}"
    assert sandbox.client.add_token(token, list(scopes)) == sorted(scopes)
    return token


def test_every_route_of_an_unknown_application_is_404(sandbox: SandboxProcess) -> None:
    base = f"/applications/{UNKNOWN}"
    one = f"{base}/notebooks/{UNKNOWN}"
    upload = {"files": {"jupyterFile": ("n.ipynb", b"{}", "application/json")}}
    cancel = {"params": {"executionId": UNKNOWN}}
    for method, path, kwargs in [
        ("GET", f"{base}/notebooks", {}),
        ("POST", f"{base}/notebooks", {"json": {"name": "created nowhere"}}),
        ("GET", one, {}),
        ("PATCH", one, {"json": {"name": "x"}}),
        ("DELETE", one, {}),
        ("POST", one, cancel),
        ("POST", f"{one}/cancelExecution", cancel),
        ("POST", f"{one}/execute", {"json": {}}),
        ("GET", f"{one}/logs", {}),
        ("GET", f"{one}/notebookMinuteCounts", {}),
        ("POST", f"{one}/requestInputDataExport", {"json": {}}),
        ("POST", f"{one}/upload", upload),
        ("GET", f"{base}/jobLogs", {}),
        ("GET", f"{base}/jobLogs/{UNKNOWN}", {}),
    ]:
        response = sandbox.request(method, path, **kwargs)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json() == {"type": "NotFound", "message": "Application was not found"}
    # Creating the notebook did not create the application.
    assert sandbox.request("GET", f"/_sandbox/applications/{UNKNOWN}").status_code == 404


def test_a_token_without_notebook_logs_gets_403_on_logs_only(
    sandbox: SandboxProcess, sandbox_app: SandboxApp
) -> None:
    notebook = sandbox_app.create_notebook()
    sandbox_app.set_behaviour(notebook["id"], status="completed", durationSeconds=0)
    token = _token(sandbox, "notebooks.get", "notebook.get", "notebook.execute")
    one = f"/applications/{sandbox_app}/notebooks/{notebook['id']}"

    denied = _as(sandbox, token, "GET", f"{one}/logs")
    assert denied.status_code == 403
    assert denied.json()["type"] == "Forbidden"
    assert "notebook.logs" in denied.json()["message"]
    assert sandbox_app.stats(notebook["id"])["requests"] == {}  # refused before it is counted
    assert _as(sandbox, token, "GET", one).json()["id"] == notebook["id"]
    assert _as(sandbox, token, "GET", f"/applications/{sandbox_app}/notebooks").status_code == 200
    executed = _as(sandbox, token, "POST", f"{one}/execute", json={})
    assert executed.status_code == 200
    sandbox_app.wait_for_status(notebook["id"], executed.json()["executionId"])
    # Other actions, and the sandbox's own routes, are refused too.
    assert _as(sandbox, token, "DELETE", one).status_code == 403
    assert _as(sandbox, token, "GET", f"/_sandbox/applications/{sandbox_app}").status_code == 403
    with pytest.raises(Forbidden):
        SandboxClient(sandbox.url, token).add_token("more", ["all.Application"])

    # A resource's wildcard and the read-only scopes count.
    assert _as(sandbox, _token(sandbox, "notebook.*"), "GET", f"{one}/logs").status_code == 200
    reader = _token(sandbox, "all.Application.read")
    assert _as(sandbox, reader, "GET", f"{one}/logs").status_code == 200
    assert _as(sandbox, reader, "POST", f"{one}/execute", json={}).status_code == 403


@pytest.mark.parametrize("scope", ["all.Application", "all.Organization"])
def test_full_access_scopes_grant_everything(sandbox: SandboxProcess, scope: str) -> None:
    token = _token(sandbox, scope)
    created = _as(sandbox, token, "POST", "/_sandbox/applications", json={"name": scope})
    assert created.status_code == 201
    app = created.json()["id"]
    notebook = _as(
        sandbox, token, "POST", f"/applications/{app}/notebooks", json={"name": "n"}
    ).json()
    one = f"/applications/{app}/notebooks/{notebook['id']}"
    assert _as(sandbox, token, "GET", f"{one}/logs").json() == []
    assert _as(sandbox, token, "POST", f"{one}/execute", json={}).status_code == 200
    assert _as(sandbox, token, "GET", f"/applications/{app}/jobLogs").status_code == 200


def test_tokens_route_rejects_bad_tokens_and_scopes(sandbox: SandboxProcess) -> None:
    for body in (
        {"token": "two words", "scopes": ["all.Application"]},
        {"token": "t", "scopes": []},
        {"token": "t", "scopes": ["not a scope"]},
        {"token": "t"},
    ):
        response = sandbox.request("POST", "/_sandbox/tokens", json=body)
        assert response.status_code == 400 and response.json()["type"] == "Validation", body
    # Changing a token's scopes answers 200 and takes effect at once.
    token = _token(sandbox, "notebooks.get")
    again = sandbox.request("POST", "/_sandbox/tokens", json={"token": token, "scopes": ["x.y"]})
    assert again.status_code == 200
    assert _as(sandbox, token, "GET", f"/applications/{UNKNOWN}/notebooks").status_code == 403


def test_scoped_tokens_on_the_command_line(tmp_path: Path) -> None:
    main = f"main-{uuid.uuid4().hex}"
    process = SandboxProcess(
        tmp_path / "data",
        token=main,
        options=["--token", main, "--token", "reader:notebook.get,notebooks.get"],
    ).start()
    try:
        app = process.create_application()  # the bare token has all.Application
        notebook = process.create_notebook(app)
        one = f"/applications/{app}/notebooks/{notebook['id']}"
        assert _as(process, "reader", "GET", one).status_code == 200
        denied = _as(process, "reader", "GET", f"{one}/logs")
        assert denied.status_code == 403 and "notebook.logs" in denied.json()["message"]
    finally:
        process.stop()


def test_job_logs_show_the_exports(
    sandbox: SandboxProcess, sandbox_app: SandboxApp, http_server: ScriptedServer
) -> None:
    notebook = sandbox_app.create_notebook("exported")
    path = f"/applications/{sandbox_app}/notebooks/{notebook['id']}/requestInputDataExport"
    options = {
        "email": "ops@example.com",
        "callbackUrl": http_server.url + "/export-done",
        "templateContext": '{"plant": 7}',
    }
    job_id = sandbox.call("POST", path, 202, json=options)["jobId"]
    log_id = sandbox.client.export_job(sandbox_app, job_id)["jobLogId"]

    def completed() -> dict[str, Any] | None:
        log = sandbox.call("GET", f"/applications/{sandbox_app}/jobLogs/{log_id}")
        return log if log["status"] == "completed" else None

    log = wait_until(completed, 15, "the export's job log to complete")
    assert log["id"] == log["jobId"] == log_id
    assert (log["applicationId"], log["resourceType"], log["resourceId"]) == (
        sandbox_app.id,
        "notebook",
        notebook["id"],
    )
    assert log["input"] == {
        "callbackUrl": options["callbackUrl"],
        "emails": ["ops@example.com"],
        "templateContext": '{"plant": 7}',
    }
    [download] = log["output"]["downloadUrls"]
    assert requests.get(download, timeout=10).content[:2] == b"PK"
    assert log["runQueuedAt"] <= log["runStartedAt"] <= log["runCompletedAt"]

    listed = sandbox.call("GET", f"/applications/{sandbox_app}/jobLogs")
    assert (listed["items"], listed["totalCount"], listed["sortField"]) == (
        [log],
        1,
        "runQueuedAt",
    )
    missing = sandbox.request("GET", f"/applications/{sandbox_app}/jobLogs/{UNKNOWN}")
    assert missing.status_code == 404 and missing.json()["type"] == "NotFound"
    for bad in (f"/jobLogs/{job_id}", "/jobLogs?query=%7B%7D", "/jobLogs?sortField=jobId"):
        response = sandbox.request("GET", f"/applications/{sandbox_app}{bad}")
        assert response.status_code == 400 and response.json()["type"] == "Validation", bad
    reader = _token(sandbox, "notebook.*")
    assert _as(sandbox, reader, "GET", f"/applications/{sandbox_app}/jobLogs").status_code == 403


def test_one_export_per_notebook_per_interval(tmp_path: Path) -> None:
    process = SandboxProcess(tmp_path / "data", options=["--export-interval", "2"]).start()
    try:
        app = process.create_application()
        first, second = (process.create_notebook(app)["id"] for _ in range(2))

        def export(notebook_id: str) -> requests.Response:
            path = f"/applications/{app}/notebooks/{notebook_id}/requestInputDataExport"
            return process.request("POST", path, json={})

        started = time.monotonic()
        assert export(first).status_code == 202
        throttled = export(first)
        assert throttled.status_code == 429
        assert throttled.json()["type"] == "TooManyRequests"
        assert "one per 2 seconds" in throttled.json()["message"]
        assert export(second).status_code == 202  # the limit is per notebook
        wait_until(lambda: export(first).status_code == 202, 10, "the export window to pass")
        assert time.monotonic() - started >= 2
        assert len(process.call("GET", f"/applications/{app}/jobLogs")["items"]) == 3
    finally:
        process.stop()
