"""Templates in input and output configuration: `{{ path.to.value }}` lookups over `notebook`,
`execution` and the context by default, Jinja2 only when the sandbox is started for it, and real
runs whose input file names are templates."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from sandbox.errors import InputError
from sandbox.templates import Render, TemplateSettings, renderer
from tests.support.sandbox import SandboxApp, SandboxProcess

KERNEL_TIMEOUT = 90.0  # seconds: a cold kernel start on a busy 2-core machine
NOTEBOOK = {"id": "5c782b8d4f3a8e51c1db42e4", "name": "Weekly report"}
EXECUTION = {"id": "5c782b8d4f3a8e51c1db42e5", "runStartedAt": "2024-05-01T12:00:01.000Z"}
CONTEXT = {
    "site": "north",
    "count": 3,
    "ratio": 2.0,
    "late": False,
    "nothing": None,
    "nested": {"users": [{"email": "a@example.com"}, {"email": "b@example.com"}]},
    "odd key": "spaced",
}


DEFAULTS = TemplateSettings()


def render_with(settings: TemplateSettings = DEFAULTS, context=CONTEXT) -> Render:
    return renderer(context, notebook=NOTEBOOK, execution=EXECUTION, settings=settings)


@pytest.mark.parametrize(
    ("template", "rendered"),
    [
        (
            "/{{notebook.name}}/{{execution.runStartedAt}}",
            "/Weekly report/2024-05-01T12:00:01.000Z",
        ),
        ("{{ context.site }}-{{context.count}}.csv", "north-3.csv"),
        ("{{ context.nested.users.1.email }}", "b@example.com"),
        ("{{ context.nested.users.[0].email }}", "a@example.com"),
        ("{{ context.[odd key] }}", "spaced"),
        ("{{{ notebook.id }}}", "5c782b8d4f3a8e51c1db42e4"),
        ("{{context.ratio}}|{{context.late}}|{{context.nothing}}", "2|false|"),
        ("plain-name.csv", "plain-name.csv"),
    ],
)
def test_paths_resolve(template, rendered):
    assert render_with()(template, "outputs[0] (file) destinationFileNameTemplate") == rendered


@pytest.mark.parametrize(
    ("template", "shown"),
    [
        ("{{ context.site | upper }}.csv", "{{ context.site | upper }}"),
        ("{{ context.count * 2 }}", "{{ context.count * 2 }}"),
        ("{{ context.site ~ '.csv' }}", "{{ context.site ~ '.csv' }}"),
        ("{{#if context.late}}x{{/if}}", "{{ #if context.late }}"),
        ("{{ ''.__class__ }}", "{{ ''.__class__ }}"),
    ],
)
def test_filters_expressions_and_helpers_are_refused_by_default(template, shown):
    with pytest.raises(InputError) as refused:
        render_with()(template, "inputs[0] (eventData) fileName")
    message = str(refused.value)
    assert message.startswith(f"inputs[0] (eventData) fileName: template {template!r} {shown}")
    assert "is not a {{ path.to.value }} lookup" in message
    assert "--templates jinja" in message


@pytest.mark.parametrize("template", ["{% if true %}a{% endif %}", "a{{ context.site"])
def test_statements_and_unclosed_tags_are_refused_by_default(template):
    with pytest.raises(InputError, match=r"fileName: template .*(statement|without a closing)"):
        render_with()(template, "inputs[0] (eventData) fileName")


def test_jinja_renders_filters_and_expressions_when_switched_on():
    render = render_with(TemplateSettings(syntax="jinja"))
    assert render("{{ context.site | upper }}-{{ context.count * 2 }}", "x") == "NORTH-6"
    assert render("{% if context.late %}late{% else %}{{ notebook.name }}{% endif %}", "x") == (
        "Weekly report"
    )
    with pytest.raises(InputError, match=r"x: template .* SecurityError"):
        render("{{ ''.__class__.__subclasses__() }}", "x")
    with pytest.raises(InputError, match=r"x: template .* UndefinedError"):
        render("{{ context.missing }}", "x")


@pytest.mark.parametrize(
    ("template", "missing"),
    [
        ("{{ context.missing }}.csv", "context.missing"),
        ("{{ site }}.csv", "site"),
        ("{{ context.nested.users.5.email }}", "context.nested.users.5.email"),
        ("{{ execution.nope }}", "execution.nope"),
    ],
)
def test_an_unknown_path_names_the_template_and_the_path(template, missing):
    with pytest.raises(InputError) as refused:
        render_with()(template, "inputs[2] (deviceData) fileName")
    assert str(refused.value) == (
        f"inputs[2] (deviceData) fileName: template {template!r} refers to {missing}, which is "
        "not defined (the variables are context, execution, notebook)"
    )


def test_a_path_to_an_object_or_a_list_is_refused():
    with pytest.raises(InputError, match=r"context\.nested is an object, not a value"):
        render_with()("{{ context.nested }}", "x")
    with pytest.raises(InputError, match=r"context\.nested\.users is a list, not a value"):
        render_with()("{{ context.nested.users }}", "x")


def test_the_context_variable_and_top_level_keys_are_switchable():
    settings = TemplateSettings(context_name="data", context_keys=True)
    render = render_with(settings, {**CONTEXT, "notebook": "shadowed"})
    assert (
        render("{{ data.site }}/{{ site }}/{{ notebook.name }}", "x") == "north/north/Weekly report"
    )
    with pytest.raises(InputError, match="the variables are count, data, execution"):
        render("{{ context.site }}", "x")


def test_missing_values_may_render_as_nothing():
    render = render_with(TemplateSettings(missing="empty"))
    assert render("a{{ context.missing.deeper }}b", "x") == "ab"
    assert render_with(TemplateSettings(syntax="jinja", missing="empty"))(
        "a{{ context.missing }}b", "x"
    ) == ("ab")


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"context_name": "notebook"}, "other than notebook and execution"),
        ({"context_name": "a.b"}, "must be a name"),
        ({"syntax": "handlebars"}, "losant or jinja"),
        ({"missing": "skip"}, "error or empty"),
    ],
)
def test_impossible_settings_are_refused(settings, problem):
    with pytest.raises(ValueError, match=problem):
        TemplateSettings(**settings)


# real runs


def _reads_input(file_name: str) -> str:
    cells = [
        "import os\n"
        f"text = open(os.path.join(os.environ['INPUT_DIR'], {file_name!r})).read()\n"
        "open(os.path.join(os.environ['OUTPUT_DIR'], 'copy.txt'), 'w').write(text)"
    ]
    return nbformat.writes(new_notebook(cells=[new_code_cell(c) for c in cells]))


def test_a_run_names_its_input_after_the_notebook(sandbox: SandboxProcess, sandbox_app: SandboxApp):
    (sandbox.files_dir(sandbox_app) / "plan.txt").write_text("step 1\n")
    notebook = sandbox_app.create_notebook(
        "nightly",
        notebook=_reads_input("nightly-north.txt"),
        inputs=[
            {
                "inputType": "applicationFile",
                "fileName": "{{notebook.name}}-{{ context.site }}.txt",
                "filePath": "plan.txt",
            }
        ],
    )
    execution_id = sandbox_app.execute(
        notebook["id"], templateContext=json.dumps({"site": "north"})
    )
    record = sandbox_app.wait_for_status(notebook["id"], execution_id, timeout=KERNEL_TIMEOUT)
    assert record["status"] == "completed", record.get("executionErrors")
    assert list(record["inputInfo"]) == ["nightly-north.txt"]


def test_an_unknown_variable_errors_the_run(sandbox_app: SandboxApp):
    notebook = sandbox_app.create_notebook(
        "unknown",
        notebook=_reads_input("x.txt"),
        inputs=[{"inputType": "eventData", "fileName": "{{ site }}.csv"}],
    )
    execution_id = sandbox_app.execute(notebook["id"], templateContext=json.dumps({"site": "x"}))
    record = sandbox_app.wait_for_status(notebook["id"], execution_id, timeout=KERNEL_TIMEOUT)
    assert record["status"] == "errored"
    assert record["executionErrors"] == [
        {
            "name": "InputError",
            "message": "inputs[0] (eventData) fileName: template '{{ site }}.csv' refers to site, "
            "which is not defined (the variables are context, execution, notebook)",
        }
    ]


def test_a_sandbox_started_for_jinja_renders_filters(tmp_path: Path):
    sandbox = SandboxProcess(
        tmp_path / "data", options=["--templates", "jinja", "--template-context-keys"]
    ).start()
    try:
        application = SandboxApp(sandbox.create_application(), sandbox)
        (sandbox.files_dir(application) / "plan.txt").write_text("step 1\n")
        notebook = application.create_notebook(
            "jinja",
            notebook=_reads_input("NORTH.txt"),
            inputs=[
                {
                    "inputType": "applicationFile",
                    "fileName": "{{ site | upper }}.txt",
                    "filePath": "plan.txt",
                }
            ],
        )
        execution_id = application.execute(
            notebook["id"], templateContext=json.dumps({"site": "north"})
        )
        record = application.wait_for_status(notebook["id"], execution_id, timeout=KERNEL_TIMEOUT)
        assert record["status"] == "completed", record.get("executionErrors")
        assert list(record["inputInfo"]) == ["NORTH.txt"]
    finally:
        sandbox.stop()
