"""Sandbox-only routes under `/_sandbox/`: applications, API tokens, scripted behaviours,
guesses, statistics, export jobs and a health check. They take a token of
the sandbox that grants every action (`all.Application`, ...; see sandbox.scopes), except
`/_sandbox/health`."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, g, jsonify, request
from flask.typing import ResponseReturnValue

from sandbox import behaviours, clock, guesses, ids, scopes
from sandbox.errors import Forbidden, NotFound, ValidationFailed
from sandbox.services import Services
from sandbox.storage import Application
from sandbox.validation import check, parse_json

blueprint = Blueprint("control", __name__, url_prefix="/_sandbox")

OBJECT_ID = {"type": "string", "pattern": "^[A-Fa-f0-9]{24}$"}
APPLICATION_SETTINGS = {
    "name": {"type": "string", "minLength": 1, "maxLength": 1024},
    "maxAllowedRunMinutes": {"type": "number", "exclusiveMinimum": 0, "maximum": 1440},
    "parallelRuns": {"type": "integer", "minimum": 1, "maximum": 1000},
}
NEW_APPLICATION = {
    "type": "object",
    "properties": {"id": OBJECT_ID, **APPLICATION_SETTINGS},
    "required": ["name"],
    "additionalProperties": False,
}
APPLICATION_PATCH = {
    "type": "object",
    "properties": APPLICATION_SETTINGS,
    "additionalProperties": False,
}
NEW_TOKEN = {
    "type": "object",
    "properties": {
        "token": {"type": "string", "minLength": 1, "maxLength": 1024},
        "scopes": {
            "type": "array",
            "items": {"type": "string", "maxLength": 256},
            "minItems": 1,
            "maxItems": 100,
        },
    },
    "required": ["token", "scopes"],
    "additionalProperties": False,
}
NOTEBOOK = "/applications/<application_id>/notebooks/<notebook_id>"


@blueprint.before_request
def _full_access() -> None:
    if request.endpoint != "control.health" and not scopes.grants_everything(g.scopes):
        raise Forbidden(f"The sandbox's own routes need a token with {scopes.FULL_ACCESS}")


def _services() -> Services:
    return current_app.extensions["sandbox"]


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    body = parse_json(request.get_data(cache=False) or b"{}")
    check(schema, body, "body")
    return body


def _id(value: str, name: str) -> str:
    if not ids.is_object_id(value):
        raise ValidationFailed(f"{name} must be a 24-character hexadecimal id")
    return value.lower()


def _application_json(application: Application) -> dict[str, Any]:
    services = _services()
    return {
        "id": application.id,
        "name": application.name,
        "maxAllowedRunMinutes": application.max_run_minutes
        or services.guesses.current().maxRunMinutes,
        "parallelRuns": application.parallel_runs or services.limits.parallel_runs,
    }


def _save_application(application_id: str, body: dict[str, Any]) -> tuple[Application, bool]:
    settings = {}
    if "maxAllowedRunMinutes" in body:
        settings["max_run_minutes"] = body["maxAllowedRunMinutes"]
    if "parallelRuns" in body:
        settings["parallel_runs"] = body["parallelRuns"]
    return _services().storage.save_application(
        application_id, body.get("name"), clock.to_ms(clock.now()), settings
    )


def _notebook_id(application_id: str, notebook_id: str) -> str:
    application_id = _id(application_id, "applicationId")
    notebook_id = _id(notebook_id, "notebookId")
    if _services().storage.get_notebook(application_id, notebook_id) is None:
        raise NotFound("Notebook was not found")
    return notebook_id


@blueprint.get("/health")
def health() -> ResponseReturnValue:
    return jsonify({"status": "ok"})


@blueprint.post("/applications")
def create_application() -> ResponseReturnValue:
    body = _body(NEW_APPLICATION)
    application_id = body["id"].lower() if "id" in body else ids.new_object_id()
    application, created = _save_application(application_id, body)
    layout = _services().layout
    layout.application_files(application.id).mkdir(parents=True, exist_ok=True)
    layout.application_fixtures(application.id).mkdir(parents=True, exist_ok=True)
    return jsonify(_application_json(application)), 201 if created else 200


@blueprint.get("/applications/<application_id>")
def get_application(application_id: str) -> ResponseReturnValue:
    application = _services().storage.get_application(_id(application_id, "applicationId"))
    if application is None:
        raise NotFound("Application was not found")
    return jsonify(_application_json(application))


@blueprint.patch("/applications/<application_id>")
def patch_application(application_id: str) -> ResponseReturnValue:
    application_id = _id(application_id, "applicationId")
    if _services().storage.get_application(application_id) is None:
        raise NotFound("Application was not found")
    application, _ = _save_application(application_id, _body(APPLICATION_PATCH))
    return jsonify(_application_json(application))


@blueprint.post("/tokens")
def put_token() -> ResponseReturnValue:
    """Add an API token with the given scopes, or change a known token's scopes."""
    body = _body(NEW_TOKEN)
    token = scopes.check_token(body["token"])
    granted = scopes.check_scopes(body["scopes"])
    created = _services().tokens.put(token, granted)
    return jsonify({"success": True, "scopes": sorted(granted)}), 201 if created else 200


@blueprint.get("/guesses")
def get_guesses() -> ResponseReturnValue:
    return jsonify(_services().guesses.current().to_json())


@blueprint.patch("/guesses")
def patch_guesses() -> ResponseReturnValue:
    return jsonify(_services().guesses.update(_body(guesses.SCHEMA)).to_json())


@blueprint.put(NOTEBOOK + "/behaviour")
def put_behaviour(application_id: str, notebook_id: str) -> ResponseReturnValue:
    notebook_id = _notebook_id(application_id, notebook_id)
    behaviour = _services().behaviours.set(notebook_id, _body(behaviours.SCHEMA))
    return jsonify(behaviour.to_json())


@blueprint.get(NOTEBOOK + "/behaviour")
def get_behaviour(application_id: str, notebook_id: str) -> ResponseReturnValue:
    notebook_id = _notebook_id(application_id, notebook_id)
    return jsonify(_services().behaviours.get(notebook_id).to_json())


@blueprint.delete(NOTEBOOK + "/behaviour")
def delete_behaviour(application_id: str, notebook_id: str) -> ResponseReturnValue:
    notebook_id = _notebook_id(application_id, notebook_id)
    _services().behaviours.clear(notebook_id)
    return jsonify(behaviours.REAL.to_json())


@blueprint.get(NOTEBOOK + "/stats")
def stats(application_id: str, notebook_id: str) -> ResponseReturnValue:
    return jsonify(_services().stats.of(_notebook_id(application_id, notebook_id)))


@blueprint.get("/applications/<application_id>/exports/<job_id>")
def export_job(application_id: str, job_id: str) -> ResponseReturnValue:
    services = _services()
    job = services.storage.get_export(job_id)
    if job is None or job.application_id != _id(application_id, "applicationId"):
        raise NotFound("Export job was not found")
    return jsonify(services.exporter.record(job, request.host_url.rstrip("/")))
