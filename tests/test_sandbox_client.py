"""`SandboxClient` against a real sandbox process: every sandbox-only route and its errors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from sandbox import defaults
from sandbox.client import SandboxClient
from sandbox.errors import (
    ApiError,
    NotFound,
    SandboxError,
    Unauthorized,
    Unavailable,
    ValidationFailed,
)
from service.runtime.processes import free_port, wait_until
from tests.support.sandbox import SandboxApp, SandboxProcess

UNKNOWN_ID = "0" * 24


@pytest.fixture
def client(sandbox: SandboxProcess) -> Iterator[SandboxClient]:
    with SandboxClient(sandbox.url, sandbox.token) as client:
        yield client


def test_health(client: SandboxClient) -> None:
    assert client.health() == {"status": "ok"}
    assert client.health(timeout=1) == {"status": "ok"}


def test_applications_are_created_read_and_updated(client: SandboxClient) -> None:
    application_id = client.create_application("Plant", parallelRuns=3)
    assert client.application(application_id) == {
        "id": application_id,
        "name": "Plant",
        "maxAllowedRunMinutes": defaults.MAX_RUN_MINUTES,
        "parallelRuns": 3,
    }
    # Posting an existing id (answered 200, not 201) updates it.
    again = client.create_application("Plant 2", id=application_id.upper())
    assert again == application_id
    assert client.application(application_id)["name"] == "Plant 2"
    updated = client.update_application(application_id, maxAllowedRunMinutes=0.5)
    assert updated["maxAllowedRunMinutes"] == 0.5
    assert client.application(application_id) == updated


def test_an_application_without_a_name_gets_a_unique_one(client: SandboxClient) -> None:
    first, second = client.create_application(), client.create_application()
    assert first != second
    assert client.application(first)["name"] != client.application(second)["name"]


def test_behaviours_and_stats(client: SandboxClient, sandbox_app: SandboxApp) -> None:
    notebook_id = sandbox_app.create_notebook()["id"]
    assert client.behaviour(sandbox_app, notebook_id)["status"] is None
    scripted = client.set_behaviour(
        sandbox_app, notebook_id, status="errored", durationSeconds=0.05
    )
    assert (scripted["status"], scripted["durationSeconds"]) == ("errored", 0.05)
    assert client.behaviour(sandbox_app, notebook_id) == scripted

    execution_id = sandbox_app.execute(notebook_id)
    assert sandbox_app.wait_for_status(notebook_id, execution_id)["status"] == "errored"
    stats = client.stats(sandbox_app, notebook_id)
    assert stats["requests"]["execute"] == 1
    assert {"callbacksSent", "callbacksFailed", "callbacksDropped"} <= stats.keys()

    cleared = client.clear_behaviour(sandbox_app, notebook_id)
    assert cleared["status"] is None
    assert client.behaviour(sandbox_app, notebook_id) == cleared


def test_export_job(
    client: SandboxClient, sandbox: SandboxProcess, sandbox_app: SandboxApp
) -> None:
    notebook_id = sandbox_app.create_notebook()["id"]
    path = f"/applications/{sandbox_app}/notebooks/{notebook_id}/requestInputDataExport"
    job_id = sandbox.call("POST", path, 202, json={})["jobId"]

    def completed() -> dict[str, Any] | None:
        job = client.export_job(sandbox_app, job_id)
        return job if job["status"] == "completed" else None

    job = wait_until(completed, 10, "the export job to complete")
    assert (job["jobId"], job["notebookId"]) == (job_id, notebook_id)
    assert job["downloadUrl"].startswith(sandbox.url)


def test_answers_other_than_2xx_raise_with_the_sandboxs_type_and_message(
    client: SandboxClient, sandbox: SandboxProcess, sandbox_app: SandboxApp
) -> None:
    with pytest.raises(NotFound, match="^Application was not found$") as caught:
        client.application(UNKNOWN_ID)
    assert (caught.value.status, caught.value.type) == (404, "NotFound")
    with pytest.raises(NotFound, match="Notebook was not found"):
        client.set_behaviour(sandbox_app, UNKNOWN_ID, status="completed")
    with pytest.raises(NotFound, match="Export job was not found"):
        client.export_job(sandbox_app, "no-such-job")

    with pytest.raises(ValidationFailed) as caught:
        client.create_application("x", id="not-an-id")
    assert (caught.value.status, caught.value.type) == (400, "Validation")

    with SandboxClient(sandbox.url, "wrong-token") as stranger:
        assert stranger.health() == {"status": "ok"}  # the one route open to all
        with pytest.raises(Unauthorized, match="bearer token") as caught:
            stranger.application(sandbox_app)
    assert isinstance(caught.value, ApiError) and isinstance(caught.value, SandboxError)
    assert caught.value.status == 401


def test_a_sandbox_that_does_not_answer_is_unavailable() -> None:
    with SandboxClient(f"http://127.0.0.1:{free_port()}", "t") as nowhere:
        with pytest.raises(Unavailable, match="/_sandbox/health failed") as caught:
            nowhere.health(timeout=1)
    assert isinstance(caught.value, SandboxError)
