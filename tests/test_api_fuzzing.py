"""nbrelay's own HTTP API keeps to `GET /api/openapi.json` under schema-driven fuzzing: no 5xx,
no status, content type or body the document does not allow, for valid and invalid requests,
against random names and against things that exist (a stored execution, a pipeline and its
run, a patch action, a valid callback token)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import schemathesis
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from service.runtime.processes import wait_until
from tests.support.fuzzing import exercise
from tests.support.sandbox import SandboxApp

EXAMPLES_PER_OPERATION = 30
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
PIPELINES = """\
    pipelines:
      fuzzed:
        params: {day: null}
        steps:
          only: {notebook: Fuzzed, context: {day: "{{ params.day }}"}}
    rules:
      patch-after:
        notebook: Fuzzed
        statuses: completed
        actions:
          - patch: {notebook: Fuzzed, set: {description: "after {{ execution.id }}"}}
    """


def test_fuzzing_finds_no_server_error_and_no_undocumented_response(
    stack_factory: Any, sandbox_app: SandboxApp, tmp_path: Path
) -> None:
    notebook_id = sandbox_app.create_notebook("Fuzzed")["id"]
    sandbox_app.set_behaviour(notebook_id, status="completed", durationSeconds=0)
    pipelines = tmp_path / "pipelines.yaml"
    pipelines.write_text(textwrap.dedent(PIPELINES))
    stack = stack_factory(env={"NBRELAY_PIPELINES": str(pipelines)})
    run = stack.post("/api/pipelines/fuzzed/runs", json={"params": {"day": "monday"}}).json()
    patch = wait_until(
        lambda: next(iter(stack.get("/api/actions?kind=patch").json()["items"]), None),
        40,
        "the rule's patch after the pipeline's execution",
    )
    (execution,) = stack.get("/api/executions").json()["items"]
    token = stack.callback_url(notebook_id).rpartition("/")[2]
    existing = {
        "executionId": execution["id"],
        "name": "fuzzed",
        "run": run["id"],
        "key": patch["key"],
        "token": token,
    }
    schema = schemathesis.openapi.from_dict(stack.get("/api/openapi.json").json())
    api_headers = {"Authorization": f"Bearer {stack.env['NBRELAY_API_TOKEN']}"}
    ingest_headers = {"Authorization": f"Bearer {stack.env['NBRELAY_INGEST_TOKEN']}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 45
    for operation in operations:
        names = {p.name for p in operation.path_parameters}
        # Not with a real notebook: every valid request would start an execution in the sandbox.
        known = {n: existing[n] for n in names if n in existing}
        strategies = [
            operation.as_strategy(mode, path_parameters=path_parameters)
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
            for path_parameters in (None, known or None)
            if mode is GenerationMode.POSITIVE or operation.path_parameters or operation.query
            or operation.body
        ]  # fmt: skip

        def call(case: schemathesis.Case) -> None:
            headers = ingest_headers if case.path == "/hooks/losant" else api_headers
            case.call_and_validate(base_url=stack.url, headers=headers, checks=CHECKS)

        exercise(strategies, call, EXAMPLES_PER_OPERATION)
