"""Losant records as the API documents them (reference §2 examples) and a client tuned for tests:
short timeouts and tiny backoffs so failure paths stay fast."""

from __future__ import annotations

from typing import Any

from service.losant import LosantClient
from tests.support.http_server import ScriptedServer

APP = "575ec8687ae143cd83dc4a97"
NOTEBOOK_ID = "5c782b8d4f3a8e51c1db42e4"
EXECUTION_ID = "5c7d3f9cd32c87a49f04c260"
TOKEN = "lsnt-Tok3n.eyJzdWIiOiJzZWNyZXQifQ.do-not-leak"

NOTEBOOK: dict[str, Any] = {
    "id": NOTEBOOK_ID,
    "notebookId": NOTEBOOK_ID,
    "applicationId": APP,
    "name": "Example Notebook",
    "jupyterFileName": "myNotebook.ipynb",
    "jupyterFileUrl": "https:/storage.example.com/myNotebook.ipynb",
    "creationDate": "2016-06-13T04:00:00.000Z",
    "lastUpdated": "2016-06-13T04:00:00.000Z",
    "imageVersion": "v4",
    "inputs": [
        {
            "inputType": "externalUrl",
            "fileName": "anExternalUrl",
            "sourceUrl": "https://example.com/external",
        }
    ],
    "outputs": [{"outputType": "executionResult", "fileName": "result.html"}],
    "stats": {"errorsThisPeriod": 1, "minutesThisPeriod": 3, "runsThisPeriod": 2},
}

EXECUTION: dict[str, Any] = {
    "id": EXECUTION_ID,
    "notebookExecutionId": EXECUTION_ID,
    "notebookId": NOTEBOOK_ID,
    "applicationId": APP,
    "imageVersion": "v4",
    "status": "errored",
    "executionRelativeTo": "2016-06-13T03:58:00.000Z",
    "maxAllowedRunMinutes": 5,
    "sourceType": "user",
    "sourceId": "575ed70c7ae143cd83dc4aa9",
    "runQueuedAt": "2016-06-13T03:59:00.000Z",
    "runStartedAt": "2016-06-13T04:00:00.000Z",
    "inputsCompletedAt": "2016-06-13T04:00:10.000Z",
    "notebookCompletedAt": "2016-06-13T04:01:00.250Z",
    "outputsCompletedAt": "2016-06-13T04:01:05.000Z",
    "templateContext": '{"day":"2016-06-12"}',
    "inputInfo": {
        "example.csv": {"contentType": "text/csv", "url": "https://example.com/e.csv", "size": 1}
    },
    "outputInfo": {"result.error.log": {"url": "https://example.com/err.log", "size": 12}},
    "executionErrors": [{"name": "KeyError", "message": "'temperature'"}],
}


def make_client(server: ScriptedServer, **overrides: Any) -> LosantClient:
    settings: dict[str, Any] = {
        "connect_timeout": 1.0,
        "read_timeout": 2.0,
        "max_retries": 2,
        "backoff_base": 0.01,
        "backoff_max": 0.05,
    }
    settings.update(overrides)
    return LosantClient(server.url, TOKEN, **settings)


def notebook(index: int, name: str | None = None) -> dict[str, Any]:
    """A notebook record with a distinct id."""
    notebook_id = f"{index:024x}"
    return {**NOTEBOOK, "id": notebook_id, "notebookId": notebook_id, "name": name or f"nb {index}"}


def page(items: list[dict[str, Any]], page: int, per_page: int, total: int) -> dict[str, Any]:
    return {
        "items": items,
        "count": len(items),
        "totalCount": total,
        "page": page,
        "perPage": per_page,
        "sortField": "name",
        "sortDirection": "asc",
        "applicationId": APP,
    }
