"""The sandbox's Losant routes over real HTTP: records, listing, errors, uploads, logs, usage."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from service.runtime.processes import wait_until
from tests.support.sandbox import EMPTY_NOTEBOOK, LOG_OUTPUTS, SandboxApp, SandboxProcess

UNKNOWN_ID = "0123456789abcdef01234567"


def _path(app: str, notebook_id: str = "", suffix: str = "") -> str:
    base = f"/applications/{app}/notebooks"
    return f"{base}/{notebook_id}{suffix}" if notebook_id else base


def test_create_returns_201_with_the_notebook_record(sandbox_app: SandboxApp) -> None:
    inputs = [{"inputType": "externalUrl", "fileName": "data.csv", "sourceUrl": "http://x/y"}]
    record = sandbox_app.create_notebook("Report", inputs=inputs, description="daily")

    assert record["id"] == record["notebookId"]
    assert record["applicationId"] == sandbox_app.id
    assert record["name"] == "Report" and record["description"] == "daily"
    assert record["inputs"] == inputs and record["outputs"] == []
    assert record["imageVersion"] == "v4"
    assert record["creationDate"].endswith("Z") and record["lastUpdated"] == record["creationDate"]
    assert record["stats"] == {"minutesThisPeriod": 0, "runsThisPeriod": 0, "errorsThisPeriod": 0}
    assert "jupyterFileUrl" not in record


def test_get_patch_and_delete(sandbox: SandboxProcess, sandbox_app: SandboxApp) -> None:
    notebook = sandbox_app.create_notebook("Before")
    path = _path(sandbox_app, notebook["id"])

    assert sandbox.call("GET", path)["name"] == "Before"
    time.sleep(0.002)
    patched = sandbox.call("PATCH", path, json={"name": "After", "imageVersion": "v3"})
    assert (patched["name"], patched["imageVersion"]) == ("After", "v3")
    assert patched["lastUpdated"] > patched["creationDate"]
    assert sandbox.call("GET", path)["name"] == "After"

    assert sandbox.call("DELETE", path) == {"success": True}
    assert sandbox.request("GET", path).status_code == 404


def test_list_sorts_filters_and_pages(sandbox: SandboxProcess, sandbox_app: SandboxApp) -> None:
    for name in ("beta report", "Alpha report", "gamma", "delta report"):
        sandbox_app.create_notebook(name)
    listed = sandbox.call("GET", _path(sandbox_app))
    assert [n["name"] for n in listed["items"]] == [
        "Alpha report",
        "beta report",
        "delta report",
        "gamma",
    ]
    assert (listed["count"], listed["totalCount"], listed["page"], listed["perPage"]) == (
        4,
        4,
        0,
        100,
    )
    assert listed["applicationId"] == sandbox_app.id
    assert (listed["sortField"], listed["sortDirection"]) == ("name", "asc")

    params = {
        "filterField": "name",
        "filter": "*REPORT",
        "sortDirection": "desc",
        "perPage": 2,
        "page": 1,
    }
    page = sandbox.call("GET", _path(sandbox_app), params=params)
    assert [n["name"] for n in page["items"]] == ["Alpha report"]
    assert (page["count"], page["totalCount"], page["filter"]) == (1, 3, "*REPORT")

    by_creation = sandbox.call("GET", _path(sandbox_app), params={"sortField": "creationDate"})
    assert [n["name"] for n in by_creation["items"]][0] == "beta report"


@pytest.mark.timeout(30)
def test_list_filter_with_many_wildcards_answers_at_once(
    sandbox: SandboxProcess, sandbox_app: SandboxApp
) -> None:
    # a backtracking matcher takes minutes to refuse this name
    sandbox_app.create_notebook("a" * 60)
    params = {"filterField": "name", "filter": "*a" * 10 + "*b"}
    assert sandbox.call("GET", _path(sandbox_app), params=params)["totalCount"] == 0
    params["filter"] = "*a" * 10 + "*"
    assert sandbox.call("GET", _path(sandbox_app), params=params)["totalCount"] == 1


def test_list_sorts_by_last_execution_requested(sandbox: SandboxProcess, sandbox_app: SandboxApp):
    first = sandbox_app.create_notebook("first")
    second = sandbox_app.create_notebook("second")
    sandbox_app.set_behaviour(first["id"], status="completed")
    sandbox_app.execute(first["id"])
    params = {"sortField": "lastExecutionRequested", "sortDirection": "desc"}
    listed = sandbox.call("GET", _path(sandbox_app), params=params)
    assert [n["id"] for n in listed["items"]] == [first["id"], second["id"]]


def test_upload_serves_the_file_at_jupyter_file_url(
    sandbox: SandboxProcess, sandbox_app: SandboxApp
) -> None:
    record = sandbox_app.create_notebook("with file", notebook=EMPTY_NOTEBOOK)
    assert record["jupyterFileName"] == "notebook.ipynb"
    download = requests.get(record["jupyterFileUrl"], timeout=10)
    assert download.status_code == 200
    assert json.loads(download.content) == EMPTY_NOTEBOOK
    tampered = record["jupyterFileUrl"].replace("signature=", "signature=0")
    assert requests.get(tampered, timeout=10).status_code == 404


def test_upload_rejects_what_is_not_a_notebook(
    sandbox: SandboxProcess, sandbox_app: SandboxApp
) -> None:
    notebook = sandbox_app.create_notebook()
    path = _path(sandbox_app, notebook["id"], "/upload")
    not_json = sandbox.request("POST", path, files={"jupyterFile": ("a.ipynb", b"hello")})
    assert not_json.status_code == 400 and not_json.json()["type"] == "Validation"
    bad_schema = {"cells": [{"cell_type": "nonsense"}], "nbformat": 4, "nbformat_minor": 5}
    invalid = sandbox.request(
        "POST", path, files={"jupyterFile": ("a.ipynb", json.dumps(bad_schema))}
    )
    assert (
        invalid.status_code == 400 and "not a valid Jupyter notebook" in invalid.json()["message"]
    )
    missing = sandbox.request("POST", path, files={"other": ("a.ipynb", b"{}")})
    assert missing.status_code == 400 and "jupyterFile" in missing.json()["message"]


@pytest.mark.parametrize(
    ("method", "suffix", "kwargs", "message"),
    [
        ("POST", "", {"data": b"{not json"}, "not valid JSON"),
        ("POST", "", {"json": {"name": "x", "color": "red"}}, "unknown field(s) color"),
        ("POST", "", {"json": {"name": 5}}, "body.name: must be of type string"),
        ("POST", "", {"json": {"name": "x" * 1025}}, "at most 1024 characters"),
        ("POST", "", {"json": {"name": "x", "imageVersion": "v9"}}, "must be one of"),
        ("POST", "", {"json": {}}, "'name' is required"),
        ("GET", "", {"params": {"sortField": "color"}}, "query.sortField"),
        ("GET", "", {"params": {"perPage": "lots"}}, "query.perPage must be an integer"),
    ],
)
def test_bad_requests_are_400_validation(
    sandbox: SandboxProcess, sandbox_app: SandboxApp, method, suffix, kwargs, message
) -> None:
    sandbox_app.create_notebook()  # the application exists, so only the request is wrong
    response = sandbox.request(method, _path(sandbox_app) + suffix, **kwargs)
    assert response.status_code == 400
    assert response.json()["type"] == "Validation"
    assert message in response.json()["message"]


def test_bad_ids_and_execute_options_are_400(sandbox: SandboxProcess, sandbox_app: SandboxApp):
    notebook = sandbox_app.create_notebook()
    bad_app = sandbox.request("GET", _path("not-an-id", notebook["id"]))
    assert bad_app.status_code == 400 and "applicationId" in bad_app.json()["message"]
    execute = _path(sandbox_app, notebook["id"], "/execute")
    for options, message in [
        ({"relativeTo": "yesterday-ish"}, "body.relativeTo"),
        ({"relativeTo": {"$date": 5}}, "body.relativeTo"),
        ({"callbackUrl": "ftp://example.com/x"}, "http or https"),
        ({"callbackUrl": "no url"}, "body.callbackUrl"),
        ({"email": "nobody"}, "body.email"),
        ({"templateContext": {"not": "a string"}}, "body.templateContext"),
    ]:
        response = sandbox.request("POST", execute, json=options)
        assert response.status_code == 400, options
        assert message in response.json()["message"], options
    cancel = sandbox.request(
        "POST", _path(sandbox_app, notebook["id"], "/cancelExecution"), params={"executionId": "x"}
    )
    assert cancel.status_code == 400


def test_missing_or_wrong_token_is_401(sandbox: SandboxProcess, sandbox_app: SandboxApp) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": sandbox.token}):
        response = requests.get(sandbox.url + _path(sandbox_app), headers=headers, timeout=10)
        assert response.status_code == 401
        assert response.json() == {
            "type": "Unauthorized",
            "message": "A valid bearer token is required",
        }


def test_unknown_application_notebook_and_execution_are_404(
    sandbox: SandboxProcess, sandbox_app: SandboxApp
) -> None:
    unknown_app = sandbox.request("GET", _path(UNKNOWN_ID))
    assert unknown_app.status_code == 404
    assert unknown_app.json() == {"type": "NotFound", "message": "Application was not found"}
    for method in ("GET", "PATCH", "DELETE"):
        response = sandbox.request(method, _path(sandbox_app, UNKNOWN_ID), json={})
        assert response.status_code == 404 and response.json()["type"] == "NotFound"
    notebook = sandbox_app.create_notebook()
    execution = sandbox.request(
        "POST",
        _path(sandbox_app, notebook["id"], "/cancelExecution"),
        params={"executionId": UNKNOWN_ID},
    )
    assert execution.status_code == 404
    assert execution.json()["message"] == "Execution was not found"
    path = sandbox.request("GET", "/no/such/path")
    assert path.status_code == 404 and path.json()["type"] == "NotFound"


def test_wrong_method_is_405(sandbox: SandboxProcess, sandbox_app: SandboxApp) -> None:
    notebook = sandbox_app.create_notebook()
    response = sandbox.request("GET", _path(sandbox_app, notebook["id"], "/execute"))
    assert response.status_code == 405
    assert response.json() == {"type": "MethodNotAllowed", "message": "GET is not allowed"}
    assert "POST" in response.headers["Allow"]


def test_oversized_bodies_are_413(sandbox: SandboxProcess, sandbox_app: SandboxApp) -> None:
    notebook = sandbox_app.create_notebook()
    big_json = b'{"name": "' + b"x" * (1024 * 1024 + 10) + b'"}'
    response = sandbox.request(
        "PATCH", _path(sandbox_app, notebook["id"]), data=big_json, headers=_json_header()
    )
    assert response.status_code == 413 and response.json()["type"] == "PayloadTooLarge"
    big_file = b" " * (16 * 1024 * 1024 + 10)
    upload = sandbox.request(
        "POST",
        _path(sandbox_app, notebook["id"], "/upload"),
        files={"jupyterFile": ("big.ipynb", big_file)},
    )
    assert upload.status_code == 413 and upload.json()["type"] == "PayloadTooLarge"


def _json_header() -> dict[str, str]:
    return {"Content-Type": "application/json"}


def test_logs_newest_first_with_limit_and_since(
    sandbox: SandboxProcess, sandbox_app: SandboxApp
) -> None:
    notebook = sandbox_app.create_notebook()
    sandbox_app.set_behaviour(notebook["id"], status="completed", durationSeconds=60)
    ids = [sandbox_app.execute(notebook["id"]) for _ in range(3)]
    path = _path(sandbox_app, notebook["id"], "/logs")

    assert [e["id"] for e in sandbox.call("GET", path)] == [ids[2]]  # limit defaults to 1
    newest_first = sandbox.call("GET", path, params={"limit": 10})
    assert [e["id"] for e in newest_first] == ids[::-1]
    since = _ms(newest_first[1]["runQueuedAt"])
    kept = sandbox.call("GET", path, params={"limit": 10, "since": since})
    assert [e["id"] for e in kept][:2] == [ids[2], ids[1]]
    assert all(_ms(e["runQueuedAt"]) >= since for e in kept)
    assert sandbox.call("GET", path, params={"since": 4102444800000}) == []
    too_many = sandbox.request("GET", path, params={"limit": 1001})
    assert too_many.status_code == 400


def _ms(iso: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(iso).timestamp() * 1000)


def test_execution_record_has_the_log_schema_fields(
    sandbox: SandboxProcess, sandbox_app: SandboxApp
) -> None:
    notebook = sandbox_app.create_notebook(outputs=LOG_OUTPUTS)
    sandbox_app.set_behaviour(notebook["id"], status="completed", durationSeconds=0.2)
    execution_id = sandbox_app.execute(
        notebook["id"], relativeTo={"$date": "2024-05-01T12:00:00Z"}, templateContext='{"a": 1}'
    )
    queued = sandbox_app.logs(notebook["id"])[0]
    assert queued["id"] == queued["notebookExecutionId"] == execution_id
    assert queued["status"] in ("queued", "inProgress")
    record = sandbox_app.wait_for_status(notebook["id"], execution_id)
    assert record["status"] == "completed"
    assert record["executionRelativeTo"] == "2024-05-01T12:00:00.000Z"
    assert record["templateContext"] == '{"a": 1}'
    assert (record["sourceType"], len(record["sourceId"])) == ("apiToken", 24)
    assert record["maxAllowedRunMinutes"] == 5
    assert record["imageVersion"] == "v4"
    for stamp in (
        "runQueuedAt",
        "runStartedAt",
        "inputsCompletedAt",
        "notebookCompletedAt",
        "outputsCompletedAt",
    ):
        assert record[stamp].endswith("Z"), stamp
    assert record["runQueuedAt"] <= record["runStartedAt"] <= record["outputsCompletedAt"]
    log = record["outputInfo"]["result.log"]
    assert log["contentType"] == "text/plain"
    assert requests.get(log["url"], timeout=10).content.startswith(b"Scripted run")
    assert record["executionErrors"] == []


def test_relative_to_accepts_number_string_and_date_object(
    sandbox: SandboxProcess, sandbox_app: SandboxApp
) -> None:
    notebook = sandbox_app.create_notebook()
    sandbox_app.set_behaviour(notebook["id"], status="completed", durationSeconds=30)
    for value in (1570549199451, "2019-10-08T15:39:59.451Z", {"$date": "2019-10-08T15:39:59.451Z"}):
        sandbox_app.execute(notebook["id"], relativeTo=value)
        assert sandbox_app.logs(notebook["id"], 1)[0]["executionRelativeTo"] == (
            "2019-10-08T15:39:59.451Z"
        )


def test_cancel_queued_and_running_scripted_runs(
    sandbox: SandboxProcess, sandbox_app: SandboxApp
) -> None:
    notebook = sandbox_app.create_notebook()
    sandbox_app.set_behaviour(notebook["id"], status="completed", durationSeconds=60)
    running = sandbox_app.execute(notebook["id"])
    sandbox_app.wait_for_status(notebook["id"], running, ["inProgress"])
    assert sandbox_app.cancel(notebook["id"], running) == {"success": True}
    record = sandbox_app.wait_for_status(notebook["id"], running)
    assert record["status"] == "canceled"

    # the merged form of the seed cancels too
    other = sandbox_app.execute(notebook["id"])
    merged = sandbox.call("POST", _path(sandbox_app, notebook["id"]), params={"executionId": other})
    assert merged == {"success": True}
    assert sandbox_app.wait_for_status(notebook["id"], other)["status"] == "canceled"
    # cancelling a finished execution changes nothing
    assert sandbox_app.cancel(notebook["id"], other) == {"success": True}
    assert sandbox_app.wait_for_status(notebook["id"], other)["status"] == "canceled"


def test_minute_counts_come_from_runs(sandbox: SandboxProcess, sandbox_app: SandboxApp) -> None:
    notebook = sandbox_app.create_notebook()
    for status in ("completed", "completed", "errored", "timeout"):
        sandbox_app.set_behaviour(notebook["id"], status=status, durationSeconds=0)
        sandbox_app.wait_for_status(notebook["id"], sandbox_app.execute(notebook["id"]))
    path = _path(sandbox_app, notebook["id"], "/notebookMinuteCounts")
    counts = sandbox.call("GET", path)
    assert len(counts["counts"]) == 1
    day = counts["counts"][0]
    assert (day["completed"], day["errored"], day["timeout"], day["canceled"]) == (2, 1, 1, 0)
    assert day["date"].endswith("T00:00:00.000Z")
    assert day["minutes"] == 4  # every started run counts at least one minute

    empty = sandbox.call("GET", path, params={"start": 0, "end": 1000})
    assert empty == {"start": "1970-01-01T00:00:00.000Z", "end": "1970-01-01T00:00:01.000Z",
                     "counts": []}  # fmt: skip
    stats = sandbox.call("GET", _path(sandbox_app, notebook["id"]))["stats"]
    assert stats == {"minutesThisPeriod": 4, "runsThisPeriod": 4, "errorsThisPeriod": 2}


def test_run_without_an_uploaded_file_errors(sandbox_app: SandboxApp) -> None:
    notebook = sandbox_app.create_notebook()
    execution_id = sandbox_app.execute(notebook["id"])
    record = sandbox_app.wait_for_status(notebook["id"], execution_id)
    assert record["status"] == "errored"
    assert record["executionErrors"][0]["name"] == "FileNotFoundError"


def test_delete_stops_runs_and_removes_their_files(
    sandbox: SandboxProcess, sandbox_app: SandboxApp
) -> None:
    notebook = sandbox_app.create_notebook(notebook=EMPTY_NOTEBOOK)
    sandbox_app.set_behaviour(notebook["id"], status="completed", durationSeconds=0)
    done = sandbox_app.execute(notebook["id"])
    sandbox_app.wait_for_status(notebook["id"], done)
    sandbox_app.set_behaviour(notebook["id"], status="completed", durationSeconds=60)
    running = sandbox_app.execute(notebook["id"])
    sandbox_app.wait_for_status(notebook["id"], running, ["inProgress"])
    folders = [
        sandbox.data_dir / "executions" / done,
        sandbox.data_dir / "notebooks" / notebook["id"],
    ]
    assert all(folder.is_dir() for folder in folders)

    sandbox.call("DELETE", _path(sandbox_app, notebook["id"]))

    wait_until(lambda: not any(folder.exists() for folder in folders), 5, "folders removed")
    assert sandbox.request("GET", _path(sandbox_app, notebook["id"], "/logs")).status_code == 404
    assert requests.get(notebook["jupyterFileUrl"], timeout=10).status_code == 404


def test_concurrent_requests_are_safe(sandbox: SandboxProcess, sandbox_app: SandboxApp) -> None:
    def work(index: int) -> tuple[str, list[str]]:
        notebook = sandbox_app.create_notebook(f"parallel {index}")
        sandbox_app.set_behaviour(notebook["id"], status="completed", durationSeconds=0)
        sandbox.call("PATCH", _path(sandbox_app, notebook["id"]), json={"description": str(index)})
        return notebook["id"], [sandbox_app.execute(notebook["id"]) for _ in range(5)]

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(work, range(32)))
    listed = sandbox.call("GET", _path(sandbox_app), params={"perPage": 1000})
    assert listed["totalCount"] == 32
    for notebook_id, execution_ids in results:
        wait_until(
            lambda n=notebook_id: all(e["status"] == "completed" for e in sandbox_app.logs(n)),
            20,
            "runs to complete",
        )
        assert {e["id"] for e in sandbox_app.logs(notebook_id)} == set(execution_ids)
