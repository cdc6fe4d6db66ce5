"""The Losant Notebooks routes (reference §1.2), validated against `openapi.yaml`.

Each request is first checked against its token's scopes (403, sandbox.scopes). A request to a
notebook that exists is then counted under its Losant action name and exposed to the notebook's
scripted faults (`serverErrors`, then `rateLimited`), then validated, then served; an `execute`
may also lose its answer (`lostExecuteAnswers`: run queued, connection cut). Applications are
created with `POST /_sandbox/applications`; every route of an application that does not exist
answers 404, creating a notebook in it included.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import socket
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import nbformat
from flask import Blueprint, current_app, g, jsonify, request
from flask.typing import ResponseReturnValue
from werkzeug.utils import secure_filename

from sandbox import clock, ids, name_filter, scopes
from sandbox.errors import (
    Forbidden,
    NotFound,
    PayloadTooLarge,
    ScriptedRateLimit,
    ScriptedServerError,
    ValidationFailed,
)
from sandbox.exports import log_id
from sandbox.records import TERMINAL_STATUSES, execution_record
from sandbox.services import Services
from sandbox.validation import ValidRequest, validate_request

log = logging.getLogger(__name__)

blueprint = Blueprint("losant", __name__)

NOTEBOOKS = "/applications/<application_id>/notebooks"
NOTEBOOK = NOTEBOOKS + "/<notebook_id>"
DEFAULT_IMAGE_VERSION = "v4"
MINUTE_COUNTS_DEFAULT_RANGE = timedelta(days=30)


@blueprint.url_value_preprocessor
def _take_path(endpoint: str | None, values: dict[str, Any] | None) -> None:
    """Path values go through the same validation as the rest, so views take no arguments."""
    g.path = {
        name: values.pop(key)
        for name, key in (
            ("applicationId", "application_id"),
            ("notebookId", "notebook_id"),
            ("jobId", "job_id"),
        )
        if values and key in values
    }


def _services() -> Services:
    return current_app.extensions["sandbox"]


def _base_url() -> str:
    return request.host_url.rstrip("/")


def _canonical_id(value: str, name: str) -> str:
    if not ids.is_object_id(value):
        raise ValidationFailed(f"{name} must be a 24-character hexadecimal id")
    return value.lower()


def _read_body(limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"Request body is larger than {limit} bytes")
    data = request.get_data(cache=False)
    if len(data) > limit:
        raise PayloadTooLarge(f"Request body is larger than {limit} bytes")
    return data


def _validated(operation_id: str) -> ValidRequest:
    """Check the token's scopes and validate the current request (its application must exist);
    for a notebook's routes also count it and apply faults."""
    if not scopes.allows(g.scopes, operation_id):
        accepted = scopes.accepted(operation_id)
        raise Forbidden(
            f"The token lacks the scope {accepted[0]} (or one of {', '.join(accepted[1:])})"
        )
    services = _services()
    path = g.path
    notebook_id = _existing_notebook_id(path)
    if notebook_id is not None:
        action = operation_id.split(".", 1)[1].removesuffix("Merged")
        services.stats.count_request(notebook_id, action)
        behaviour = services.behaviours.get(notebook_id)
        if behaviour.fails_request():
            raise ScriptedServerError("Scripted server error")
        if behaviour.limits_request():
            raise ScriptedRateLimit("Scripted rate limit exceeded", behaviour.retry_after)
    has_body = request.method in ("POST", "PATCH") and operation_id != "notebook.upload"
    body = _read_body(services.settings.json_body_limit) if has_body else None
    valid = validate_request(operation_id, path, request.args.to_dict(), body)
    for name in path:
        valid.path[name] = _canonical_id(valid.path[name], name)
    if services.storage.get_application(valid.path["applicationId"]) is None:
        raise NotFound("Application was not found")
    return valid


def _existing_notebook_id(path: dict[str, str]) -> str | None:
    """The notebook's id when the request's path names a notebook that exists in its
    application: only those have statistics and behaviours."""
    application_id = path.get("applicationId", "").lower()
    notebook_id = path.get("notebookId", "").lower()
    if not (ids.is_object_id(application_id) and ids.is_object_id(notebook_id)):
        return None
    if _services().storage.get_notebook(application_id, notebook_id) is None:
        return None
    return notebook_id


def _notebook(valid: ValidRequest) -> dict[str, Any]:
    notebook = _services().storage.get_notebook(
        valid.path["applicationId"], valid.path["notebookId"]
    )
    if notebook is None:
        raise NotFound("Notebook was not found")
    return notebook


def _notebook_json(doc: dict[str, Any]) -> dict[str, Any]:
    return _services().notebook_records([doc], _base_url())[0]


def _check_inputs(inputs: list[dict[str, Any]]) -> None:
    """Input file names must be unique: they become files in one folder."""
    seen: set[str] = set()
    for index, spec in enumerate(inputs):
        if spec["fileName"] in seen:
            raise ValidationFailed(f"body.inputs[{index}].fileName: {spec['fileName']} is repeated")
        seen.add(spec["fileName"])


def _callback_url(options: dict[str, Any]) -> str | None:
    url = options.get("callbackUrl")
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationFailed("body.callbackUrl: must be an http or https URL")
    return url


def _relative_to(options: dict[str, Any]) -> Any:
    if "relativeTo" not in options:
        return clock.now()
    try:
        return clock.parse_time_format(options["relativeTo"])
    except ValueError as exc:
        raise ValidationFailed(f"body.relativeTo: {exc}") from None


def _ms(valid: ValidRequest, name: str) -> int | None:
    if name not in valid.query:
        return None
    try:
        return clock.to_ms(clock.from_ms(valid.query[name]))
    except ValueError:
        raise ValidationFailed(f"query.{name}: is not a valid time") from None


# notebooks


@blueprint.get(NOTEBOOKS)
def list_notebooks() -> ResponseReturnValue:
    valid = _validated("notebooks.get")
    application_id = valid.path["applicationId"]
    query = valid.query
    rows = _services().storage.list_notebooks(application_id)
    pattern = query.get("filter") if query.get("filterField") else None
    if pattern:
        rows = [row for row in rows if name_filter.matches(pattern, row[0]["name"])]
    rows.sort(key=_sort_key(query["sortField"]), reverse=query["sortDirection"] == "desc")
    page, per_page = query["page"], query["perPage"]
    chosen = [doc for doc, _ in rows[page * per_page : (page + 1) * per_page]]
    result: dict[str, Any] = {
        "items": _services().notebook_records(chosen, _base_url()),
        "count": len(chosen),
        "totalCount": len(rows),
        "perPage": per_page,
        "page": page,
        "sortField": query["sortField"],
        "sortDirection": query["sortDirection"],
        "applicationId": application_id,
    }
    if pattern:
        result.update(filter=pattern, filterField=query["filterField"])
    return jsonify(result)


def _sort_key(field: str) -> Callable[[tuple[dict[str, Any], int | None]], Any]:
    if field == "lastExecutionRequested":
        return lambda row: (row[1] if row[1] is not None else -1, row[0]["id"])
    if field == "name":
        return lambda row: (row[0]["name"].casefold(), row[0]["name"], row[0]["id"])
    return lambda row: (row[0][field], row[0]["id"])


@blueprint.post(NOTEBOOKS)
def create_notebook() -> ResponseReturnValue:
    valid = _validated("notebooks.post")
    application_id = valid.path["applicationId"]
    body = valid.body
    _check_inputs(body.get("inputs", []))
    services = _services()
    now = clock.now()
    notebook_id = ids.new_object_id()
    doc = {
        "id": notebook_id,
        "notebookId": notebook_id,
        "applicationId": application_id,
        "creationDate": clock.iso(now),
        "lastUpdated": clock.iso(now),
        "name": body["name"],
        "imageVersion": body.get("imageVersion", DEFAULT_IMAGE_VERSION),
        "inputs": body.get("inputs", []),
        "outputs": body.get("outputs", []),
    }
    if "description" in body:
        doc["description"] = body["description"]
    services.storage.insert_notebook(doc)
    return jsonify(_notebook_json(doc)), 201


@blueprint.get(NOTEBOOK)
def get_notebook() -> ResponseReturnValue:
    return jsonify(_notebook_json(_notebook(_validated("notebook.get"))))


@blueprint.patch(NOTEBOOK)
def patch_notebook() -> ResponseReturnValue:
    valid = _validated("notebook.patch")
    doc = _notebook(valid)
    _check_inputs(valid.body.get("inputs", []))
    services = _services()
    doc.update(valid.body)
    doc["lastUpdated"] = clock.iso(clock.now())
    services.storage.save_notebook(doc)
    services.stats.count_patch(doc["id"], valid.body)
    return jsonify(_notebook_json(doc))


@blueprint.delete(NOTEBOOK)
def delete_notebook() -> ResponseReturnValue:
    doc = _notebook(_validated("notebook.delete"))
    services = _services()
    execution_ids = services.storage.delete_notebook(doc["id"])
    services.behaviours.clear(doc["id"])
    services.stats.forget(doc["id"])
    services.runs.discard_notebook(doc["id"], execution_ids)
    shutil.rmtree(services.layout.notebook_dir(doc["id"]), ignore_errors=True)
    shutil.rmtree(services.layout.notebook_exports(doc["id"]), ignore_errors=True)
    return jsonify({"success": True})


@blueprint.post(NOTEBOOK + "/upload")
def upload() -> ResponseReturnValue:
    services = _services()
    if (
        request.content_length is not None
        and request.content_length > services.settings.upload_limit
    ):
        raise PayloadTooLarge(f"Upload is larger than {services.settings.upload_limit} bytes")
    valid = _validated("notebook.upload")
    doc = _notebook(valid)
    upload = request.files.get("jupyterFile")
    if upload is None:
        raise ValidationFailed("jupyterFile is required (a multipart/form-data file field)")
    content = upload.read()
    try:
        nbformat.validate(nbformat.reads(content.decode("utf-8"), as_version=4))
    except Exception as exc:  # noqa: BLE001 - nbformat raises many kinds for bad input
        message = " ".join(str(exc).split())[:200]
        raise ValidationFailed(f"jupyterFile is not a valid Jupyter notebook: {message}") from None
    name = secure_filename(upload.filename or "") or "notebook.ipynb"
    if not name.lower().endswith(".ipynb"):
        name += ".ipynb"
    folder = services.layout.notebook_dir(doc["id"])
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    (folder / name).write_bytes(content)
    doc["jupyterFileName"] = name
    doc["lastUpdated"] = clock.iso(clock.now())
    services.storage.save_notebook(doc)
    return jsonify(_notebook_json(doc))


# executions


@blueprint.post(NOTEBOOK + "/execute")
def execute() -> ResponseReturnValue:
    valid = _validated("notebook.execute")
    notebook = _notebook(valid)
    options = valid.body
    callback_url = _callback_url(options)
    relative_to = _relative_to(options)
    services = _services()
    application = services.storage.get_application(notebook["applicationId"])
    max_minutes = (
        application.max_run_minutes if application else None
    ) or services.guesses.current().maxRunMinutes
    now = clock.now()
    execution_id = ids.new_object_id()
    doc: dict[str, Any] = {
        "id": execution_id,
        "notebookExecutionId": execution_id,
        "notebookId": notebook["id"],
        "applicationId": notebook["applicationId"],
        "imageVersion": notebook["imageVersion"],
        "status": "queued",
        "executionRelativeTo": clock.iso(relative_to),
        "maxAllowedRunMinutes": max_minutes,
        "sourceType": "apiToken",
        "sourceId": _token_id(g.token),
        "runQueuedAt": clock.iso(now),
        "inputInfo": {},
        "outputInfo": {},
        "executionErrors": [],
    }
    if "templateContext" in options:
        doc["templateContext"] = options["templateContext"]
    services.storage.insert_execution(doc, clock.to_ms(now), callback_url)
    row = services.storage.get_execution(execution_id)
    assert row is not None
    behaviour = services.behaviours.get(notebook["id"])
    services.runs.submit(row, behaviour if behaviour.scripted else None)
    if behaviour.loses_execute_answer():
        _cut_connection(notebook["id"], execution_id)
    return jsonify({"success": True, "executionId": execution_id})


def _cut_connection(notebook_id: str, execution_id: str) -> None:
    """Lose the answer to an applied `execute` (`lostExecuteAnswers`): shut the connection both
    ways, so no status line goes out and the client sees the server disconnect. werkzeug then
    fails to write the answer and drops it as a connection the client closed, quietly."""
    connection = request.environ.get("werkzeug.socket")
    if connection is None:  # not served by werkzeug's server: no connection to cut
        log.warning("lostExecuteAnswers needs the sandbox's own server; the answer is sent")
        return
    _services().stats.count_execute_answer_lost(notebook_id)
    log.debug("answer to execute of %s cut (lostExecuteAnswers)", execution_id)
    try:
        connection.shutdown(socket.SHUT_RDWR)
    except OSError:  # the client has gone already
        pass


def _token_id(token: str) -> str:
    """A stable 24-hex id for the API token (`sourceId`) that does not reveal it."""
    return hashlib.sha256(b"nbrelay-sandbox-token:" + token.encode()).hexdigest()[:24]


@blueprint.post(NOTEBOOK + "/cancelExecution")
def cancel_execution() -> ResponseReturnValue:
    return _cancel(_validated("notebook.cancelExecution"))


@blueprint.post(NOTEBOOK)
def cancel_execution_merged() -> ResponseReturnValue:
    return _cancel(_validated("notebook.cancelExecutionMerged"))


def _cancel(valid: ValidRequest) -> ResponseReturnValue:
    notebook = _notebook(valid)
    execution_id = _canonical_id(valid.query["executionId"], "executionId")
    services = _services()
    row = services.storage.get_execution(execution_id)
    if row is None or row.notebook_id != notebook["id"]:
        raise NotFound("Execution was not found")
    if row.status not in TERMINAL_STATUSES:
        services.storage.transition(execution_id, ["queued", "inProgress"], {"status": "canceling"})
        services.runs.cancel(execution_id)
    return jsonify({"success": True})


@blueprint.get(NOTEBOOK + "/logs")
def logs() -> ResponseReturnValue:
    valid = _validated("notebook.logs")
    notebook = _notebook(valid)
    services = _services()
    latency = services.behaviours.get(notebook["id"]).logsLatencySeconds
    if latency:
        time.sleep(latency)
    guesses = services.guesses.current()
    limit = guesses.logs_limit(valid.query["limit"])
    docs = services.storage.logs(notebook["id"], limit, _ms(valid, "since"), guesses.logsSince)
    base_url = _base_url()
    return jsonify([execution_record(doc, base_url) for doc in docs])


@blueprint.get(NOTEBOOK + "/notebookMinuteCounts")
def notebook_minute_counts() -> ResponseReturnValue:
    valid = _validated("notebook.notebookMinuteCounts")
    notebook = _notebook(valid)
    end_ms = _ms(valid, "end")
    end = clock.from_ms(end_ms) if end_ms is not None else clock.now()
    start_ms = _ms(valid, "start")
    start = clock.from_ms(start_ms) if start_ms is not None else end - MINUTE_COUNTS_DEFAULT_RANGE
    if start > end:
        raise ValidationFailed("query.start: must not be after end")
    days: dict[int, dict[str, Any]] = {}
    for day, status, runs, minutes in _services().storage.usage_by_day(
        notebook["id"], clock.to_ms(start), clock.to_ms(end)
    ):
        entry = days.setdefault(
            day,
            {
                "date": clock.iso(clock.from_ms(day)),
                "minutes": 0,
                **dict.fromkeys(("completed", "canceled", "errored", "timeout"), 0),
            },
        )
        entry["minutes"] += minutes
        entry[status] = entry.get(status, 0) + runs
    return jsonify(
        {"start": clock.iso(start), "end": clock.iso(end), "counts": list(days.values())}
    )


@blueprint.post(NOTEBOOK + "/requestInputDataExport")
def request_input_data_export() -> ResponseReturnValue:
    valid = _validated("notebook.requestInputDataExport")
    notebook = _notebook(valid)
    options = valid.body
    job_id = _services().exporter.request(
        notebook,
        _relative_to(options),
        options.get("templateContext"),
        _callback_url(options),
        options.get("email"),
        _token_id(g.token),
    )
    return jsonify({"success": True, "jobQueued": True, "jobId": job_id}), 202


# application job logs (the input data exports')


@blueprint.get("/applications/<application_id>/jobLogs")
def job_logs() -> ResponseReturnValue:
    valid = _validated("applicationJobLogs.get")
    if "query" in request.args:
        raise ValidationFailed("query.query: the sandbox does not filter job logs")
    application_id = valid.path["applicationId"]
    services = _services()
    base_url = _base_url()
    logs = [
        services.exporter.job_log(job, base_url)
        for job in services.storage.exports_of(application_id)
    ]
    field = valid.query["sortField"]
    # Absent times sort first, as a missing field does in Losant's ascending order (inferred).
    logs.sort(
        key=lambda log: (log.get(field) or "", log["id"]),
        reverse=valid.query["sortDirection"] == "desc",
    )
    page, per_page = valid.query["page"], valid.query["perPage"]
    chosen = logs[page * per_page : (page + 1) * per_page]
    return jsonify(
        {
            "items": chosen,
            "count": len(chosen),
            "totalCount": len(logs),
            "perPage": per_page,
            "page": page,
            "sortField": field,
            "sortDirection": valid.query["sortDirection"],
            "applicationId": application_id,
        }
    )


@blueprint.get("/applications/<application_id>/jobLogs/<job_id>")
def job_log() -> ResponseReturnValue:
    valid = _validated("applicationJobLog.get")
    services = _services()
    for job in services.storage.exports_of(valid.path["applicationId"]):
        if log_id(job.id) == valid.path["jobId"]:
            return jsonify(services.exporter.job_log(job, _base_url()))
    raise NotFound("Application job log was not found")
