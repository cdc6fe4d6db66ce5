"""The sandbox's guesses (what Losant does not document), switched through `/_sandbox/guesses`,
and what it counts as run minutes and run-time limit."""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime
from pathlib import Path

import pytest

from sandbox import defaults, guesses
from sandbox.errors import ValidationFailed
from service.runtime.processes import wait_until
from tests.support.http_server import Reply
from tests.support.sandbox import EMPTY_NOTEBOOK


def ms(date: str) -> int:
    return int(datetime.fromisoformat(date).timestamp() * 1000)


def test_the_guesses_have_documented_defaults_and_refuse_bad_values(sandbox, sandbox_guesses):
    assert sandbox.client.guesses() == {
        "logsSince": "queued",
        "logsLimitCap": 1000,
        "logsAboveCap": "reject",
        "callbackBody": "triggerData",
        "callbackAttempts": 4,
        "callbackBackoffSeconds": 0.5,
        "templateSyntax": "losant",
        "templateContextName": "context",
        "templateContextKeys": False,
        "templateMissing": "error",
        "outputInfo": "configured",
        "exportIntervalSeconds": 900.0,
        "maxRunMinutes": 5.0,
    }
    for bad in (
        {"logsSince": "created"},
        {"logsLimitCap": 0},
        {"callbackBody": "xml"},
        {"callbackAttempts": 0},
        {"callbackBackoffSeconds": -1},
        {"templateSyntax": "mustache"},
        {"templateContextName": "notebook"},
        {"templateContextName": "a b"},
        {"templateContextKeys": "yes"},
        {"outputInfo": "everything"},
        {"exportIntervalSeconds": -1},
        {"maxRunMinutes": 0},
        {"retries": 2},
    ):
        with pytest.raises(ValidationFailed):
            sandbox_guesses(**bad)
    response = sandbox.request("PATCH", "/_sandbox/guesses", data=b"{")
    assert response.status_code == 400 and response.json()["type"] == "Validation"
    assert sandbox_guesses(callbackAttempts=1)["callbackAttempts"] == 1
    assert sandbox.client.guesses()["logsSince"] == "queued"


def test_each_meaning_of_since_selects_its_executions(sandbox, sandbox_app, sandbox_guesses):
    sandbox.client.update_application(sandbox_app.id, parallelRuns=1)
    notebook_id = sandbox_app.create_notebook()["id"]
    sandbox_app.set_behaviour(notebook_id, status="completed", durationSeconds=0.05)
    ended = sandbox_app.execute(notebook_id)
    first = sandbox_app.wait_for_status(notebook_id, ended)
    sandbox_app.set_behaviour(notebook_id, status="completed", durationSeconds=60)
    running = sandbox_app.execute(notebook_id)
    sandbox_app.wait_for_status(notebook_id, running, {"inProgress"})
    queued = sandbox_app.execute(notebook_id)
    since = ms(first["runQueuedAt"])
    expected = {
        "queued": {ended, running, queued},
        "queuedAfter": {running, queued},
        "started": {ended, running},
        "ended": {ended},
    }
    try:
        for meaning, ids in expected.items():
            sandbox_guesses(logsSince=meaning)
            listed = sandbox_app.logs(notebook_id, since=since)
            assert {r["id"] for r in listed} == ids, meaning
            assert len(sandbox_app.logs(notebook_id)) == 3, meaning  # no `since`: all of them
    finally:
        sandbox_app.cancel(notebook_id, queued)
        sandbox_app.cancel(notebook_id, running)


def test_each_callback_body_and_no_body(sandbox_app, sandbox_guesses, http_server):
    notebook_id = sandbox_app.create_notebook()["id"]
    sandbox_app.set_behaviour(notebook_id, status="errored", durationSeconds=0.05)
    bodies = {}
    for count, kind in enumerate(("triggerData", "triggerPayload", "execution", "empty"), 1):
        sandbox_guesses(callbackBody=kind)
        execution_id = sandbox_app.execute(notebook_id, callbackUrl=http_server.url + "/cb")
        request = http_server.wait_for_requests(count)[-1]
        bodies[kind] = (execution_id, request)
    execution_id, request = bodies["triggerData"]
    data = request.json()
    assert (data["success"], data["notebook"]["id"]) == (False, notebook_id)
    assert (data["execution"]["id"], data["execution"]["status"]) == (execution_id, "errored")
    execution_id, request = bodies["triggerPayload"]
    payload = request.json()
    assert (payload["triggerType"], payload["triggerId"]) == ("notebook", notebook_id)
    assert payload["applicationId"] == sandbox_app.id and payload["applicationName"]
    assert payload["time"].endswith("Z")
    assert payload["data"]["execution"]["id"] == execution_id
    assert payload["data"]["success"] is False and payload["data"]["notebook"]["id"] == notebook_id
    execution_id, request = bodies["execution"]
    assert request.json()["id"] == execution_id and request.json()["status"] == "errored"
    assert "success" not in request.json()
    _, request = bodies["empty"]
    assert request.method == "POST" and request.body == b""
    assert "json" not in request.headers.get("content-type", "")


def test_callback_retries_follow_the_guess(sandbox_app, sandbox_guesses, http_server):
    http_server.default = Reply(503)
    notebook_id = sandbox_app.create_notebook()["id"]
    sandbox_app.set_behaviour(notebook_id, status="completed", durationSeconds=0.05)
    sandbox_guesses(callbackAttempts=1)
    sandbox_app.execute(notebook_id, callbackUrl=http_server.url + "/once")
    wait_until(lambda: sandbox_app.stats(notebook_id)["callbacksFailed"] == 1, 10, "a give-up")
    assert len(http_server.requests) == 1
    sandbox_guesses(callbackAttempts=3, callbackBackoffSeconds=0)
    sandbox_app.execute(notebook_id, callbackUrl=http_server.url + "/thrice")
    wait_until(lambda: sandbox_app.stats(notebook_id)["callbacksFailed"] == 2, 10, "a give-up")
    assert [r.path for r in http_server.requests] == ["/once"] + ["/thrice"] * 3


def test_the_default_run_limit_is_five_minutes(sandbox_app):
    assert defaults.MAX_RUN_MINUTES == 5
    notebook_id = sandbox_app.create_notebook()["id"]
    sandbox_app.set_behaviour(notebook_id, status="completed", durationSeconds=0.05)
    record = sandbox_app.wait_for_status(notebook_id, sandbox_app.execute(notebook_id))
    # the suite's sandbox runs with the command's default
    assert record["maxAllowedRunMinutes"] == 5


def test_set_up_is_not_counted_as_run_minutes(sandbox_app, http_server):
    """A run that fails while its inputs are built never ran its notebook: 0 minutes; a run
    whose notebook ran for a moment counts a whole minute."""
    http_server.default = Reply(404)
    failing = sandbox_app.create_notebook(
        notebook=EMPTY_NOTEBOOK,
        inputs=[
            {"inputType": "externalUrl", "fileName": "a.csv", "sourceUrl": http_server.url + "/a"}
        ],
    )["id"]
    record = sandbox_app.wait_for_status(failing, sandbox_app.execute(failing))
    assert record["status"] == "errored" and "inputsCompletedAt" not in record
    scripted = sandbox_app.create_notebook()["id"]
    sandbox_app.set_behaviour(scripted, status="completed", durationSeconds=0.05)
    sandbox_app.wait_for_status(scripted, sandbox_app.execute(scripted))
    for notebook_id, minutes, status in ((failing, 0, "errored"), (scripted, 1, "completed")):
        path = f"/applications/{sandbox_app.id}/notebooks/{notebook_id}/notebookMinuteCounts"
        (day,) = sandbox_app.sandbox.call("GET", path)["counts"]
        assert (day["minutes"], day[status]) == (minutes, 1)


def test_every_guess_says_where_its_default_comes_from():
    for guess in fields(guesses.Guesses):
        assert guess.name in guesses.SCHEMA["properties"]
        assert guesses.SOURCES[guess.name].split(":")[0] in ("documented", "observed", "guessed")


def test_every_guess_is_in_the_readme():
    """Each field of the model has a row in the Fidelity table and a line in the Sandbox section's
    list of guesses."""
    readme = Path("README.md").read_text(encoding="utf-8")
    fidelity = readme.split("\n## Fidelity\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in fidelity.splitlines() if line.startswith("| ")]
    sandbox = readme.split("\n## Sandbox\n", 1)[1].split("\n## ", 1)[0]
    listed = sandbox.split("- **Guesses**", 1)[1].split("\n- **", 1)[0]
    for guess in fields(guesses.Guesses):
        assert any(f"`{guess.name}`" in row for row in rows), guess.name
        assert f"`{guess.name}`" in listed, guess.name


def test_run_guesses_switch_while_the_sandbox_runs(sandbox, sandbox_app, sandbox_guesses):
    """Templates, outputInfo, the run-time limit and the export window are read when a run or an
    export starts, so a switch applies to the next one."""
    notebook_id = sandbox_app.create_notebook()["id"]
    sandbox_app.set_behaviour(notebook_id, status="completed", durationSeconds=0)

    def run() -> dict:
        execution_id = sandbox_app.execute(notebook_id)
        return sandbox_app.wait_for_status(notebook_id, execution_id)

    assert run()["maxAllowedRunMinutes"] == 5
    sandbox_guesses(maxRunMinutes=0.5, outputInfo="all")
    done = run()
    assert done["maxAllowedRunMinutes"] == 0.5
    assert "result.log" in done["outputInfo"]  # `all` lists every artefact
    assert sandbox.client.application(sandbox_app.id)["maxAllowedRunMinutes"] == 0.5

    export = f"/applications/{sandbox_app.id}/notebooks/{notebook_id}/requestInputDataExport"
    assert sandbox.request("POST", export, json={}).status_code == 202
    assert sandbox.request("POST", export, json={}).status_code == 429
    sandbox_guesses(exportIntervalSeconds=0)
    assert sandbox.request("POST", export, json={}).status_code == 202
