"""Losant's official Python client (`losant-rest`) works unchanged against the sandbox, and so
does nbrelay's own."""

from __future__ import annotations

import pytest
from losant_rest import LosantError

from service.losant import LosantClient
from tests.support.sandbox import EMPTY_NOTEBOOK, SandboxApp, SandboxProcess


def test_every_notebook_route_of_the_official_client(
    sandbox: SandboxProcess, sandbox_app: SandboxApp
) -> None:
    client = sandbox.losant_client()
    app = sandbox_app.id

    created = [
        client.notebooks.post(applicationId=app, notebook={"name": name})
        for name in ("etl daily", "etl hourly", "report")
    ]
    notebook_id = created[0]["id"]
    listed = client.notebooks.get(
        applicationId=app,
        sortField="name",
        sortDirection="desc",
        page=0,
        perPage=1,
        filterField="name",
        filter="etl*",
    )
    assert [n["name"] for n in listed["items"]] == ["etl hourly"]
    assert (listed["totalCount"], listed["count"]) == (2, 1)

    assert client.notebook.get(applicationId=app, notebookId=notebook_id)["name"] == "etl daily"
    patched = client.notebook.patch(
        applicationId=app, notebookId=notebook_id, notebook={"description": "runs at 2am"}
    )
    assert patched["description"] == "runs at 2am"
    sandbox.upload(app, notebook_id, EMPTY_NOTEBOOK)  # the client has no upload method

    sandbox.set_behaviour(app, notebook_id, status="completed", durationSeconds=30)
    started = client.notebook.execute(
        applicationId=app,
        notebookId=notebook_id,
        executionOptions={"relativeTo": 1570549199451, "templateContext": "{}"},
    )
    assert started["success"] is True
    execution_id = started["executionId"]
    logs = client.notebook.logs(applicationId=app, notebookId=notebook_id, limit=10, since=0)
    assert [entry["id"] for entry in logs] == [execution_id]
    assert client.notebook.cancel_execution(
        applicationId=app, notebookId=notebook_id, executionId=execution_id
    ) == {"success": True}
    sandbox.wait_for_status(app, notebook_id, execution_id, ["canceled"])

    counts = client.notebook.notebook_minute_counts(
        applicationId=app, notebookId=notebook_id, start=0, end=4102444800000
    )
    assert counts["counts"][0]["canceled"] == 1

    export = client.notebook.request_input_data_export(
        applicationId=app, notebookId=notebook_id, exportOptions={"email": "ops@example.com"}
    )
    assert export["success"] is True and export["jobQueued"] is True
    assert 0 < len(export["jobId"]) <= 21

    assert client.notebook.delete(applicationId=app, notebookId=notebook_id) == {"success": True}
    with pytest.raises(LosantError) as missing:
        client.notebook.get(applicationId=app, notebookId=notebook_id)
    assert missing.value.status == 404


def test_nbrelays_own_client_reads_the_sandbox(
    sandbox: SandboxProcess, sandbox_app: SandboxApp
) -> None:
    client = LosantClient(sandbox.url, sandbox.token)
    notebook = client.create_notebook(sandbox_app.id, {"name": "own client"})
    sandbox_app.set_behaviour(notebook.id, status="errored", durationSeconds=0)
    execution_id = client.execute(
        sandbox_app.id, notebook.id, template_context={"nbrelay": {"run": "r1"}}
    )
    sandbox_app.wait_for_status(notebook.id, execution_id)
    (execution,) = client.logs(sandbox_app.id, notebook.id, limit=5)
    assert (execution.id, execution.status, execution.is_terminal) == (
        execution_id,
        "errored",
        True,
    )
    assert execution.execution_errors[0].name == "ScriptedError"
    assert client.find_notebook(sandbox_app.id, "own client").id == notebook.id
