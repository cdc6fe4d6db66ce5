"""`sandbox/openapi.yaml`: it defines Losant's published schemas, and the running sandbox keeps
to it under schema-driven fuzzing (no 5xx, no response the document does not allow)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from sandbox.validation import document
from tests.support.fuzzing import exercise
from tests.support.sandbox import SandboxApp, SandboxProcess

PUBLISHED = Path(__file__).parent / "data" / "losant_schemas"
PATTERN_MAPS = ("inputInfo", "outputInfo")
EXAMPLES_PER_OPERATION = 40


def _dereferenced(node: Any) -> Any:
    if isinstance(node, dict):
        if "$ref" in node:
            target: Any = document()
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            return _dereferenced(target)
        return {key: _dereferenced(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_dereferenced(value) for value in node]
    return node


def _without_annotations(schema: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in schema.items() if k not in ("$schema", "title", "description")}


@pytest.mark.parametrize("published", sorted(PUBLISHED.glob("*.json")), ids=lambda p: p.stem)
def test_document_schemas_are_the_published_ones(published: Path) -> None:
    """Fully resolved, every schema equals Losant's published JSON Schema. The one deliberate
    difference: OpenAPI 3.0 has no `patternProperties`, so `.*` maps use `additionalProperties`."""
    expected = _without_annotations(json.loads(published.read_text()))
    ours = _without_annotations(_dereferenced(document()["components"]["schemas"][published.stem]))
    if published.stem == "notebookExecutionLogs":
        for name in PATTERN_MAPS:
            entry = ours["items"]["properties"][name]
            entry.pop("description")
            entry["patternProperties"] = {".*": entry.pop("additionalProperties")}
    if published.stem == "notebooks":
        for schema in (expected, ours):
            schema["properties"]["items"]["items"] = _without_annotations(
                schema["properties"]["items"]["items"]
            )
    assert ours == expected


def test_document_has_the_losant_routes() -> None:
    routes = {
        (method.upper(), path)
        for path, item in document()["paths"].items()
        for method in item
        if method != "parameters"
    }
    base = "/applications/{applicationId}/notebooks"
    one = base + "/{notebookId}"
    assert routes == {
        ("GET", base),
        ("POST", base),
        ("GET", one),
        ("PATCH", one),
        ("DELETE", one),
        ("POST", one),  # the seed's merged cancelExecution
        ("POST", one + "/execute"),
        ("POST", one + "/cancelExecution"),
        ("GET", one + "/logs"),
        ("GET", one + "/notebookMinuteCounts"),
        ("POST", one + "/upload"),
        ("POST", one + "/requestInputDataExport"),
        ("GET", "/applications/{applicationId}/jobLogs"),
        ("GET", "/applications/{applicationId}/jobLogs/{jobId}"),
    }


def test_fuzzing_finds_no_server_error_and_no_undocumented_response(
    sandbox: SandboxProcess, sandbox_app: SandboxApp
) -> None:
    schema = schemathesis.openapi.from_dict(document())
    notebooks = [sandbox_app.create_notebook(f"fuzz {i}")["id"] for i in range(3)]
    for notebook_id in notebooks:
        sandbox_app.set_behaviour(notebook_id, status="completed", durationSeconds=0)
    headers = {"Authorization": f"Bearer {sandbox.token}"}
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 14
    for operation in operations:
        # Valid and invalid requests, against random ids and against real notebooks.
        strategies = [
            operation.as_strategy(mode, path_parameters=path_parameters)
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
            for path_parameters in (
                None,
                *(_existing(operation.path, sandbox_app, nb) for nb in notebooks),
            )
        ]

        def call(case: schemathesis.Case) -> None:
            case.call_and_validate(base_url=sandbox.url, headers=headers, checks=checks)

        exercise(strategies, call, EXAMPLES_PER_OPERATION)


def _existing(path: str, application_id: str, notebook_id: str) -> dict[str, str]:
    """Path parameters that name real things, so fuzzing reaches past the 404s."""
    values = {"applicationId": application_id}
    if "{notebookId}" in path:
        values["notebookId"] = notebook_id
    return values
