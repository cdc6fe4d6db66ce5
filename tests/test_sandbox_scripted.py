"""Scripted behaviours, scheduling limits, callbacks and the per-notebook statistics."""

from __future__ import annotations

import time

import pytest

from sandbox.stats import Stats
from service.runtime.processes import wait_until
from tests.support.http_server import Reply, ScriptedServer
from tests.support.sandbox import LOG_OUTPUTS, SandboxApp, SandboxProcess


@pytest.mark.parametrize("status", ["completed", "errored", "timeout", "canceled"])
def test_scripted_run_ends_in_its_status_and_calls_back(
    sandbox_app: SandboxApp, http_server: ScriptedServer, status: str
) -> None:
    notebook = sandbox_app.create_notebook(outputs=LOG_OUTPUTS)
    sandbox_app.set_behaviour(notebook["id"], status=status, durationSeconds=0.3)
    started = time.monotonic()
    execution_id = sandbox_app.execute(notebook["id"], callbackUrl=f"{http_server.url}/cb?t=1")

    (request,) = http_server.wait_for_requests(1)
    assert time.monotonic() - started >= 0.3
    assert (request.method, request.path, request.query) == ("POST", "/cb", {"t": ["1"]})
    body = request.json()
    assert set(body) == {"success", "notebook", "execution"}
    assert body["success"] is (status == "completed")
    assert body["notebook"]["id"] == notebook["id"]
    assert body["notebook"]["stats"]["runsThisPeriod"] == 1
    execution = body["execution"]
    assert (execution["id"], execution["status"]) == (execution_id, status)
    assert execution == sandbox_app.logs(notebook["id"], 1)[0]
    if status in ("errored", "timeout"):
        assert execution["executionErrors"] and "result.error.log" in execution["outputInfo"]
    else:
        assert execution["executionErrors"] == []


def test_parallel_limit_keeps_extra_runs_queued(sandbox: SandboxProcess) -> None:
    app = SandboxApp(sandbox.create_application(parallelRuns=2), sandbox)
    notebook = app.create_notebook()
    app.set_behaviour(notebook["id"], status="completed", durationSeconds=0.6)
    ids = [app.execute(notebook["id"]) for _ in range(3)]

    def statuses() -> list[str]:
        by_id = {e["id"]: e["status"] for e in app.logs(notebook["id"])}
        return [by_id[i] for i in ids]

    assert wait_until(lambda: statuses() == ["inProgress", "inProgress", "queued"], 5, "2 running")
    last = app.wait_for_status(notebook["id"], ids[2], ["inProgress"])
    first = app.wait_for_status(notebook["id"], ids[0])
    assert last["runStartedAt"] >= first["outputsCompletedAt"]
    assert app.wait_for_status(notebook["id"], ids[2])["status"] == "completed"


def test_cancel_of_a_queued_run(sandbox: SandboxProcess) -> None:
    app = SandboxApp(sandbox.create_application(parallelRuns=1), sandbox)
    notebook = app.create_notebook()
    app.set_behaviour(notebook["id"], status="completed", durationSeconds=30)
    running, queued = app.execute(notebook["id"]), app.execute(notebook["id"])
    app.wait_for_status(notebook["id"], running, ["inProgress"])
    app.cancel(notebook["id"], queued)
    record = app.wait_for_status(notebook["id"], queued)
    assert record["status"] == "canceled" and "runStartedAt" not in record
    app.cancel(notebook["id"], running)
    assert app.wait_for_status(notebook["id"], running)["status"] == "canceled"


def test_dropped_and_duplicated_callbacks(
    sandbox_app: SandboxApp, http_server: ScriptedServer
) -> None:
    notebook = sandbox_app.create_notebook()
    sandbox_app.set_behaviour(notebook["id"], status="completed", dropCallbacks=1)
    dropped = sandbox_app.execute(notebook["id"], callbackUrl=http_server.url)
    sandbox_app.wait_for_status(notebook["id"], dropped)
    wait_until(lambda: sandbox_app.stats(notebook["id"])["callbacksDropped"] == 1, 5, "drop")

    sandbox_app.set_behaviour(notebook["id"], status="completed", duplicateCallbacks=1)
    duplicated = sandbox_app.execute(notebook["id"], callbackUrl=http_server.url)
    requests = http_server.wait_for_requests(2)
    assert [r.json()["execution"]["id"] for r in requests] == [duplicated, duplicated]
    assert len(http_server.requests) == 2  # nothing came for the dropped one
    wait_until(lambda: sandbox_app.stats(notebook["id"])["callbacksSent"] == 2, 5, "2 sent")


def test_failed_callbacks_are_retried_then_given_up(
    sandbox_app: SandboxApp, http_server: ScriptedServer
) -> None:
    notebook = sandbox_app.create_notebook()
    sandbox_app.set_behaviour(notebook["id"], status="completed")
    http_server.reply(Reply(503), Reply(500))
    sandbox_app.execute(notebook["id"], callbackUrl=http_server.url)
    requests = http_server.wait_for_requests(3)
    assert [r.json() == requests[0].json() for r in requests] == [True] * 3
    wait_until(lambda: sandbox_app.stats(notebook["id"])["callbacksSent"] == 1, 5, "delivered")

    http_server.default = Reply(500)
    sandbox_app.execute(notebook["id"], callbackUrl=http_server.url)
    stats = wait_until(
        lambda: (s := sandbox_app.stats(notebook["id"]))["callbacksFailed"] == 1 and s,
        20,
        "the callback to be given up",
    )
    assert len(http_server.requests) == 3 + 4  # four attempts for the second callback
    assert stats["callbacksSent"] == 1


def test_unreachable_callback_does_not_block_other_runs(
    sandbox_app: SandboxApp, http_server: ScriptedServer
) -> None:
    notebook = sandbox_app.create_notebook()
    sandbox_app.set_behaviour(notebook["id"], status="completed")
    http_server.reply(Reply(200, delay=3))
    sandbox_app.execute(notebook["id"], callbackUrl=http_server.url)
    http_server.wait_for_requests(1)
    started = time.monotonic()
    quick = sandbox_app.execute(notebook["id"])
    sandbox_app.wait_for_status(notebook["id"], quick)
    assert time.monotonic() - started < 2


def test_server_errors_and_logs_latency(sandbox: SandboxProcess, sandbox_app: SandboxApp) -> None:
    notebook = sandbox_app.create_notebook()
    path = f"/applications/{sandbox_app}/notebooks/{notebook['id']}"
    sandbox_app.set_behaviour(notebook["id"], serverErrors=1)
    failed = sandbox.request("POST", path + "/execute", json={})
    assert failed.status_code == 500 and failed.json()["type"] == "InternalServerError"
    assert sandbox.request("GET", path + "/logs").status_code == 500

    sandbox_app.set_behaviour(notebook["id"], logsLatencySeconds=0.5)
    started = time.monotonic()
    assert sandbox.call("GET", path + "/logs") == []  # the failed execute created nothing
    assert time.monotonic() - started >= 0.5

    stats = sandbox_app.stats(notebook["id"])
    assert stats["requests"] == {"execute": 1, "logs": 2}
    assert sandbox.clear_behaviour(sandbox_app, notebook["id"])["status"] is None
    assert sandbox.call("GET", f"/_sandbox{path}/behaviour")["serverErrors"] == 0


def test_behaviour_validation(sandbox: SandboxProcess, sandbox_app: SandboxApp) -> None:
    notebook = sandbox_app.create_notebook()
    path = f"/_sandbox/applications/{sandbox_app}/notebooks/{notebook['id']}/behaviour"
    for body in ({"status": "finished"}, {"dropCallbacks": 2}, {"colour": 1}):
        response = sandbox.request("PUT", path, json=body)
        assert response.status_code == 400 and response.json()["type"] == "Validation"
    unknown = path.replace(notebook["id"], "0" * 24)
    assert sandbox.request("PUT", unknown, json={}).status_code == 404


def test_applications_endpoint(sandbox: SandboxProcess) -> None:
    created = sandbox.request(
        "POST", "/_sandbox/applications", json={"name": "Fixed", "id": "ab" * 12}
    )
    assert created.status_code in (200, 201)
    assert created.json()["id"] == "ab" * 12
    again = sandbox.request(
        "POST", "/_sandbox/applications", json={"name": "Renamed", "id": "AB" * 12}
    )
    assert again.status_code == 200 and again.json()["name"] == "Renamed"
    listed = sandbox.call("GET", f"/applications/{'ab' * 12}/notebooks")
    assert listed["applicationId"] == "ab" * 12
    patched = sandbox.call(
        "PATCH", f"/_sandbox/applications/{'ab' * 12}", json={"maxAllowedRunMinutes": 0.05}
    )
    assert patched["maxAllowedRunMinutes"] == 0.05
    bad = sandbox.request("POST", "/_sandbox/applications", json={"name": "x", "id": "nope"})
    assert bad.status_code == 400


def test_scripted_runs_are_cheap(sandbox: SandboxProcess) -> None:
    app = SandboxApp(sandbox.create_application(parallelRuns=1000), sandbox)
    notebook = app.create_notebook()
    app.set_behaviour(notebook["id"], status="completed", durationSeconds=0.05)
    started = time.monotonic()
    ids = [app.execute(notebook["id"]) for _ in range(200)]
    wait_until(
        lambda: all(e["status"] == "completed" for e in app.logs(notebook["id"])), 20, "200 runs"
    )
    elapsed = time.monotonic() - started
    assert len(app.logs(notebook["id"])) == len(ids)
    assert elapsed < 10, f"200 scripted runs took {elapsed:.1f}s"


def test_only_requests_to_notebooks_that_exist_are_counted(
    sandbox: SandboxProcess, sandbox_app: SandboxApp
) -> None:
    notebook = sandbox_app.create_notebook()
    other_app = sandbox.create_application()
    unknown = "0123456789abcdef01234567"
    for application_id, notebook_id in [
        (other_app, notebook["id"]),  # the notebook, in an application it is not in
        (unknown, notebook["id"]),  # in an application that does not exist
        (sandbox_app.id, unknown),  # a notebook that does not exist
        (sandbox_app.id, "not-an-id"),
    ]:
        path = f"/applications/{application_id}/notebooks/{notebook_id}/logs"
        assert sandbox.request("GET", path).status_code in (400, 404)

    assert sandbox_app.stats(notebook["id"])["requests"] == {}
    for application_id, notebook_id in [(other_app, notebook["id"]), (sandbox_app.id, unknown)]:
        stats_path = f"/_sandbox/applications/{application_id}/notebooks/{notebook_id}/stats"
        assert sandbox.request("GET", stats_path).status_code == 404


def test_a_deleted_notebook_has_no_stats(sandbox: SandboxProcess, sandbox_app: SandboxApp) -> None:
    notebook = sandbox_app.create_notebook()
    path = f"/applications/{sandbox_app}/notebooks/{notebook['id']}"
    sandbox.call("GET", path + "/logs")
    assert sandbox_app.stats(notebook["id"])["requests"] == {"logs": 1}

    sandbox.call("DELETE", path)
    assert sandbox.request("GET", f"/_sandbox{path}/stats").status_code == 404
    assert sandbox.request("GET", path + "/logs").status_code == 404


def test_stats_keep_the_notebooks_counted_most_recently() -> None:
    stats = Stats(limit=2)
    for notebook_id in ("first", "second", "first", "third"):
        stats.count_request(notebook_id, "logs")
    assert stats.of("first")["requests"] == {"logs": 2}
    assert stats.of("third")["requests"] == {"logs": 1}
    assert stats.of("second")["requests"] == {}

    stats.count_callback("fourth", "sent")
    assert stats.of("fourth")["callbacksSent"] == 1
    assert stats.of("third")["requests"] == {"logs": 1}
    assert stats.of("first")["requests"] == {}
