"""Every notebook route of the Losant client: method, path, query, headers, body and the model the
answer becomes, against a real local HTTP server."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from service.config import ConfigError, Settings
from service.losant import (
    AmbiguousNotebook,
    Execution,
    LosantClient,
    MinuteCounts,
    Notebook,
    NotFound,
)
from tests.support.http_server import RecordedRequest, Reply, ScriptedServer
from tests.support.losant import (
    APP,
    EXECUTION,
    EXECUTION_ID,
    NOTEBOOK,
    NOTEBOOK_ID,
    TOKEN,
    make_client,
    notebook,
    page,
)

BASE = f"/applications/{APP}/notebooks"
ONE = f"{BASE}/{NOTEBOOK_ID}"
LINKS = {"_actions": ["false"], "_links": ["true"], "_embedded": ["true"]}


@pytest.fixture
def client(http_server: ScriptedServer) -> LosantClient:
    return make_client(http_server)


def only_request(server: ScriptedServer) -> RecordedRequest:
    assert len(server.requests) == 1, server.requests
    return server.requests[0]


def assert_common_headers(request: RecordedRequest) -> None:
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["accept"] == "application/json"
    assert request.headers["accept-version"] == "^1.29.3"


def assert_json_body(request: RecordedRequest, body: dict) -> None:
    assert request.headers["content-type"] == "application/json"
    assert request.json() == body


def test_list_notebooks_sends_sort_filter_and_page(http_server, client):
    http_server.reply(Reply(200, page([NOTEBOOK], 2, 10, 21)))

    result = client.list_notebooks(
        APP, sort_field="lastUpdated", sort_direction="desc", page=2, per_page=10, filter="etl*"
    )

    request = only_request(http_server)
    assert (request.method, request.path) == ("GET", BASE)
    assert request.query == {
        **LINKS,
        "sortField": ["lastUpdated"],
        "sortDirection": ["desc"],
        "page": ["2"],
        "perPage": ["10"],
        "filterField": ["name"],
        "filter": ["etl*"],
    }
    assert_common_headers(request)
    assert request.body == b""
    assert result.total_count == 21 and result.page == 2 and result.per_page == 10
    assert [nb.name for nb in result.items] == ["Example Notebook"]


def test_list_notebooks_defaults(http_server, client):
    http_server.reply(Reply(200, page([], 0, 100, 0)))

    assert client.list_notebooks(APP).items == []

    assert only_request(http_server).query == {
        **LINKS,
        "sortField": ["name"],
        "sortDirection": ["asc"],
        "page": ["0"],
        "perPage": ["100"],
    }


def test_iter_notebooks_pages_until_every_item_is_seen(http_server, client):
    records = [notebook(i) for i in range(7)]
    http_server.reply(
        Reply(200, page(records[0:3], 0, 3, 7)),
        Reply(200, page(records[3:6], 1, 3, 7)),
        Reply(200, page(records[6:7], 2, 3, 7)),
    )

    seen = list(client.iter_notebooks(APP, per_page=3, filter="nb*"))

    assert [nb.id for nb in seen] == [r["id"] for r in records]
    assert [r.query["page"] for r in http_server.requests] == [["0"], ["1"], ["2"]]
    assert all(r.query["perPage"] == ["3"] for r in http_server.requests)
    assert all(r.query["filter"] == ["nb*"] for r in http_server.requests)


def test_iter_notebooks_stops_at_total_count_and_skips_repeats(http_server, client):
    records = [notebook(i) for i in range(4)]
    # A notebook that moved between pages shows up twice; the total says when to stop.
    http_server.reply(
        Reply(200, page(records[0:2], 0, 2, 4)),
        Reply(200, page([records[1], records[2]], 1, 2, 4)),
    )
    http_server.default = Reply(500, {"type": "Unexpected", "message": "asked too far"})

    seen = list(client.iter_notebooks(APP, per_page=2))

    assert [nb.id for nb in seen] == [r["id"] for r in records[0:3]]
    assert len(http_server.requests) == 2


def test_find_notebook_by_id(http_server, client):
    http_server.reply(Reply(200, NOTEBOOK))

    assert client.find_notebook(APP, NOTEBOOK_ID).id == NOTEBOOK_ID

    request = only_request(http_server)
    assert (request.method, request.path) == ("GET", ONE)


def test_find_notebook_by_exact_name_through_the_name_filter(http_server, client):
    wanted = notebook(2, "daily report [v2]?")
    http_server.reply(Reply(200, page([notebook(1, "daily report [v2]? old"), wanted], 0, 100, 2)))

    found = client.find_notebook(APP, "daily report [v2]?")

    assert found.id == wanted["id"]
    request = only_request(http_server)
    assert request.path == BASE
    assert request.query["filterField"] == ["name"]
    # The filter is a glob: the name's own glob characters are widened so it still matches.
    assert request.query["filter"] == ["daily report *v2**"]


def test_find_notebook_falls_back_to_name_when_no_notebook_has_that_id(http_server, client):
    named_like_an_id = notebook(3, NOTEBOOK_ID)
    http_server.reply(
        Reply(404, {"type": "NotFound", "message": "Notebook was not found"}),
        Reply(200, page([named_like_an_id], 0, 100, 1)),
    )

    assert client.find_notebook(APP, NOTEBOOK_ID).id == named_like_an_id["id"]
    assert [r.path for r in http_server.requests] == [ONE, BASE]


def test_find_notebook_unknown_name_is_not_found(http_server, client):
    http_server.reply(Reply(200, page([notebook(1, "report 2")], 0, 100, 1)))

    with pytest.raises(NotFound, match="'report'"):
        client.find_notebook(APP, "report")


def test_find_notebook_ambiguous_name_says_so(http_server, client):
    twins = [notebook(1, "report"), notebook(2, "report")]
    http_server.reply(Reply(200, page(twins, 0, 100, 2)))

    with pytest.raises(AmbiguousNotebook) as caught:
        client.find_notebook(APP, "report")

    message = str(caught.value)
    assert "2 notebooks are named 'report'" in message
    assert twins[0]["id"] in message and twins[1]["id"] in message
    assert caught.value.exit_code == 2


def test_create_notebook(http_server, client):
    http_server.reply(Reply(201, NOTEBOOK))

    created = client.create_notebook(APP, {"name": "Example Notebook", "imageVersion": "v4"})

    request = only_request(http_server)
    assert (request.method, request.path, request.query) == ("POST", BASE, LINKS)
    assert_common_headers(request)
    assert_json_body(request, {"name": "Example Notebook", "imageVersion": "v4"})
    assert isinstance(created, Notebook) and created.id == NOTEBOOK_ID


def test_get_notebook_keeps_losants_record(http_server, client):
    record = {**NOTEBOOK, "fieldAddedLater": {"x": 1}}
    http_server.reply(Reply(200, record))

    got = client.get_notebook(APP, NOTEBOOK_ID)

    request = only_request(http_server)
    assert (request.method, request.path, request.query) == ("GET", ONE, LINKS)
    assert_common_headers(request)
    assert got.jupyter_file_name == "myNotebook.ipynb"
    assert got.creation_date == datetime(2016, 6, 13, 4, tzinfo=UTC)
    assert got.stats is not None and got.stats.runs_this_period == 2
    assert got.model_dump(mode="json", by_alias=True, exclude_none=True) == record


def test_patch_notebook(http_server, client):
    http_server.reply(Reply(200, {**NOTEBOOK, "imageVersion": "v3"}))

    patched = client.patch_notebook(APP, NOTEBOOK_ID, {"imageVersion": "v3"})

    request = only_request(http_server)
    assert (request.method, request.path, request.query) == ("PATCH", ONE, LINKS)
    assert_common_headers(request)
    assert_json_body(request, {"imageVersion": "v3"})
    assert patched.image_version == "v3"


def test_delete_notebook(http_server, client):
    http_server.reply(Reply(200, {"success": True}))

    assert client.delete_notebook(APP, NOTEBOOK_ID) is None

    request = only_request(http_server)
    assert (request.method, request.path, request.query) == ("DELETE", ONE, LINKS)
    assert_common_headers(request)


def test_execute_sends_the_run_options_and_returns_the_execution_id(http_server, client):
    http_server.reply(Reply(200, {"success": True, "executionId": EXECUTION_ID}))

    execution_id = client.execute(
        APP,
        NOTEBOOK_ID,
        relative_to=datetime(2019, 10, 8, 15, 39, 59, 451000, tzinfo=UTC),
        template_context={"nbrelay": {"run": "r1", "step": "report", "attempt": 1}},
        email="ops@example.com",
        callback_url="https://relay.example.com/callbacks/abc",
    )

    assert execution_id == EXECUTION_ID
    request = only_request(http_server)
    assert (request.method, request.path, request.query) == ("POST", f"{ONE}/execute", LINKS)
    assert_common_headers(request)
    body = request.json()
    assert body == {
        "relativeTo": 1570549199451,
        "templateContext": body["templateContext"],
        "email": "ops@example.com",
        "callbackUrl": "https://relay.example.com/callbacks/abc",
    }
    assert isinstance(body["templateContext"], str)
    assert json.loads(body["templateContext"]) == {
        "nbrelay": {"run": "r1", "step": "report", "attempt": 1}
    }


def test_execute_with_no_options_sends_an_empty_object(http_server, client):
    http_server.reply(Reply(200, {"success": True, "executionId": EXECUTION_ID}))

    client.execute(APP, NOTEBOOK_ID, template_context='{"raw": true}')

    assert_json_body(only_request(http_server), {"templateContext": '{"raw": true}'})


def test_cancel_execution(http_server, client):
    http_server.reply(Reply(200, {"success": True}))

    assert client.cancel_execution(APP, NOTEBOOK_ID, EXECUTION_ID) is None

    request = only_request(http_server)
    assert (request.method, request.path) == ("POST", f"{ONE}/cancelExecution")
    assert request.query == {**LINKS, "executionId": [EXECUTION_ID]}
    assert_common_headers(request)
    assert request.body == b""


def test_logs_with_limit_and_since(http_server, client):
    newer = {**EXECUTION, "id": "5c7d3f9cd32c87a49f04c261", "status": "queued"}
    http_server.reply(Reply(200, [newer, EXECUTION]))

    since = datetime(2016, 6, 13, 3, 0, tzinfo=UTC)
    executions = client.logs(APP, NOTEBOOK_ID, limit=50, since=since)

    request = only_request(http_server)
    assert (request.method, request.path) == ("GET", f"{ONE}/logs")
    assert request.query == {**LINKS, "limit": ["50"], "since": ["1465786800000"]}
    assert_common_headers(request)
    assert [e.id for e in executions] == ["5c7d3f9cd32c87a49f04c261", EXECUTION_ID]
    assert [e.is_terminal for e in executions] == [False, True]


def test_logs_without_arguments_leaves_losants_defaults(http_server, client):
    http_server.reply(Reply(200, []))

    assert client.logs(APP, NOTEBOOK_ID) == []
    assert only_request(http_server).query == LINKS


def test_execution_model_fields_and_round_trip(http_server, client):
    record = {**EXECUTION, "laterField": True}
    http_server.reply(Reply(200, [record]))

    (execution,) = client.logs(APP, NOTEBOOK_ID, limit=1, since=1465786800000)

    assert isinstance(execution, Execution)
    assert execution.notebook_execution_id == EXECUTION_ID
    assert execution.notebook_id == NOTEBOOK_ID and execution.application_id == APP
    assert execution.status == "errored" and execution.is_terminal
    assert execution.max_allowed_run_minutes == 5
    assert execution.source_type == "user"
    assert execution.run_queued_at == datetime(2016, 6, 13, 3, 59, tzinfo=UTC)
    assert execution.notebook_completed_at == datetime(2016, 6, 13, 4, 1, 0, 250000, tzinfo=UTC)
    assert execution.template_context == '{"day":"2016-06-12"}'
    assert execution.output_info["result.error.log"]["size"] == 12
    assert [(e.name, e.message) for e in execution.execution_errors] == [
        ("KeyError", "'temperature'")
    ]
    assert execution.model_dump(mode="json", by_alias=True, exclude_none=True) == record
    assert execution.as_given == record
    assert http_server.requests[0].query["since"] == ["1465786800000"]


def test_an_execution_is_kept_exactly_as_losant_gave_it(http_server, client):
    record = {**EXECUTION, "maxAllowedRunMinutes": 5, "relativeTo": None}
    http_server.reply(Reply(200, [record]))
    (execution,) = client.logs(APP, NOTEBOOK_ID, limit=1)
    assert execution.as_given == record  # the null and the whole number as they came
    assert execution.model_dump(mode="json", by_alias=True, exclude_none=True) != record


def test_notebook_minute_counts(http_server, client):
    answer = {
        "start": "1999-05-20T05:00:00.000Z",
        "end": "1999-06-20T04:59:59.999Z",
        "counts": [
            {
                "date": "1999-06-20T00:00:00.000Z",
                "minutes": 17,
                "completed": 4,
                "errored": 1,
                "canceled": 0,
                "timeout": 0,
            }
        ],
    }
    http_server.reply(Reply(200, answer))

    counts = client.notebook_minute_counts(APP, NOTEBOOK_ID, start=927176400000, end=929854799999)

    request = only_request(http_server)
    assert (request.method, request.path) == ("GET", f"{ONE}/notebookMinuteCounts")
    assert request.query == {**LINKS, "start": ["927176400000"], "end": ["929854799999"]}
    assert_common_headers(request)
    assert isinstance(counts, MinuteCounts)
    assert counts.counts[0].minutes == 17 and counts.counts[0].errored == 1
    assert counts.model_dump(mode="json", by_alias=True, exclude_none=True) == answer


def test_upload_sends_the_file_as_multipart_jupyter_file(http_server, client):
    http_server.reply(Reply(200, {**NOTEBOOK, "jupyterFileName": "report.ipynb"}))
    content = json.dumps({"cells": [], "nbformat": 4, "nbformat_minor": 5}).encode()

    uploaded = client.upload(APP, NOTEBOOK_ID, "report.ipynb", content)

    request = only_request(http_server)
    assert (request.method, request.path, request.query) == ("POST", f"{ONE}/upload", LINKS)
    assert_common_headers(request)
    assert request.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert request.multipart() == {"jupyterFile": ("report.ipynb", content)}
    assert uploaded.jupyter_file_name == "report.ipynb"


def test_request_input_data_export(http_server, client):
    http_server.reply(
        Reply(202, {"jobId": "clnHvJbyVkOWAZwYAwLP4", "jobQueued": True, "success": True})
    )

    job = client.request_input_data_export(
        APP, NOTEBOOK_ID, email="ops@example.com", relative_to=1570549199451
    )

    request = only_request(http_server)
    assert (request.method, request.path, request.query) == (
        "POST",
        f"{ONE}/requestInputDataExport",
        LINKS,
    )
    assert_common_headers(request)
    assert_json_body(request, {"email": "ops@example.com", "relativeTo": 1570549199451})
    assert job.job_id == "clnHvJbyVkOWAZwYAwLP4" and job.job_queued


def test_ids_are_quoted_into_the_path(http_server, client):
    http_server.reply(Reply(404, {"type": "NotFound", "message": "Notebook was not found"}))

    with pytest.raises(NotFound):
        client.get_notebook(APP, "../../me")

    assert only_request(http_server).path == f"{BASE}/..%2F..%2Fme"


def test_base_url_path_prefix_and_custom_accept_version(http_server):
    http_server.reply(Reply(200, NOTEBOOK))
    client = LosantClient(
        f"{http_server.url}/losant/", TOKEN, accept_version="^1.30.0", max_retries=0
    )

    client.get_notebook(APP, NOTEBOOK_ID)

    request = only_request(http_server)
    assert request.path == f"/losant{ONE}"
    assert request.headers["accept-version"] == "^1.30.0"


def test_from_settings_uses_the_configured_url_and_token(http_server):
    http_server.reply(Reply(200, NOTEBOOK))
    settings = Settings.from_env(
        {"LOSANT_API_URL": http_server.url, "LOSANT_API_TOKEN": TOKEN}, dotenv_path=None
    )

    with LosantClient.from_settings(settings) as client:
        client.get_notebook(APP, NOTEBOOK_ID)

    assert only_request(http_server).headers["authorization"] == f"Bearer {TOKEN}"


def test_from_settings_without_a_token_names_the_variable():
    with pytest.raises(ConfigError, match="LOSANT_API_TOKEN"):
        LosantClient.from_settings(Settings.from_env({}, dotenv_path=None))


def test_connections_are_reused(http_server, client):
    http_server.reply(Reply(200, NOTEBOOK), Reply(200, NOTEBOOK), Reply(200, NOTEBOOK))

    for _ in range(3):
        client.get_notebook(APP, NOTEBOOK_ID)

    # Keep-alive: the second and third request arrive on the first one's connection.
    assert len({r.peer for r in http_server.requests}) == 1
