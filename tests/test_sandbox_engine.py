"""The execution engine runs real notebooks in real kernels: completed, errored, timed-out and
cancelled runs, their artefacts and outputs, and the failures of the machinery itself.

Runs that need no interaction start together in one module fixture, so their kernels start in
parallel."""

from __future__ import annotations

import json
import os
import signal
import sys
import textwrap
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nbformat
import psutil
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from sandbox import defaults
from sandbox.engine import RunHandle, RunOutcome, RunSpec, start_run
from sandbox.environment import kernel_environment
from sandbox.outputs import OutputPlan
from sandbox.templates import TemplateScope, TemplateSettings
from sandbox.workdir import WorkDir
from service.runtime.processes import free_port, wait_until

DEMO_DIR = Path(__file__).resolve().parent.parent / "sandbox" / "demo"
DEMOS = {d["name"]: d for d in json.loads((DEMO_DIR / "notebooks.json").read_text())["notebooks"]}
QUERY_TIME = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
RUN_TIMEOUT = 120  # seconds any test waits for a run, far above what a run takes
ARTEFACTS = {"result.ipynb", "result.html", "result.log"}
TIME_LIMIT_MINUTES = 0.05  # 3 s

READS_INPUTS = [
    """
    import csv, json, os, sys
    input_dir, output_dir = os.environ["INPUT_DIR"], os.environ["OUTPUT_DIR"]
    context = json.load(open(os.path.join(input_dir, "context.json")))
    rows = list(csv.DictReader(open(os.path.join(input_dir, "readings.csv"))))
    print(f"read {len(rows)} rows for {context['site']}")
    """,
    """
    print("a warning", file=sys.stderr)
    os.makedirs(os.path.join(output_dir, "reports"), exist_ok=True)
    summary = {
        "site": context["site"],
        "rows": len(rows),
        "limit": open(os.path.join(input_dir, "limit.txt")).read(),
        "python": sys.executable,
        "environment": sorted(os.environ),
        "parent_environment": sorted(
            entry.split(b"=", 1)[0].decode()
            for entry in open(f"/proc/{os.getppid()}/environ", "rb").read().split(b"\\0")
            if entry
        ),
    }
    with open(os.path.join(output_dir, "reports", "summary.json"), "w") as f:
        json.dump(summary, f)
    """,
    'print("done")',
]
# Variables of the sandbox's environment that neither the kernel nor its parent may see.
SECRETS = {
    "NBRELAY_SECRET": "a-secret-the-notebook-must-not-see",
    "LOSANT_API_TOKEN": "a-token-the-notebook-must-not-see",
    "SMTP_PASSWORD": "a-password-the-notebook-must-not-see",
    "AWS_SECRET_ACCESS_KEY": "a-key-the-notebook-must-not-see",
    "SLACK_WEBHOOK_URL": "https://hooks.example.com/the-notebook-must-not-see",
}
RAISES = ['print("before")', 'raise ValueError("bad reading 42")', 'print("never")']
LOOPS = ['print("spinning")', "while True:\n    pass"]
DIES = ["import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"]
# Records the kernel's pid and a child process's pid, then waits forever.
SPAWNS_AND_LOOPS = [
    """
    import os, subprocess, time
    child = subprocess.Popen(["sleep", "600"])
    with open(os.path.join(os.environ["OUTPUT_DIR"], "pids.tmp"), "w") as f:
        f.write(f"{os.getpid()} {child.pid}")
    os.rename(f.name, os.path.join(os.environ["OUTPUT_DIR"], "pids"))
    """,
    "while True:\n    time.sleep(0.1)",
]


def write_notebook(path: Path, cells: list[str]) -> Path:
    notebook = new_notebook(
        cells=[new_markdown_cell("# test")] + [new_code_cell(textwrap.dedent(c)) for c in cells]
    )
    nbformat.write(notebook, path)
    return path


def make_spec(
    root: Path,
    name: str,
    cells: list[str] | None,
    *,
    inputs: list[dict] | None = None,
    context: str | None = None,
    minutes: float = 1.0,
) -> RunSpec:
    (root / "files").mkdir(exist_ok=True)
    (root / "fixtures").mkdir(exist_ok=True)
    notebook = root / f"{name}.ipynb"
    if cells is not None:
        write_notebook(notebook, cells)
    execution_id = f"{name:0>24}"[-24:]
    return RunSpec(
        execution_id=execution_id,
        notebook_file=notebook,
        work_dir=root / "runs" / name,
        inputs=inputs or [],
        relative_to=QUERY_TIME,
        max_run_minutes=minutes,
        files_dir=root / "files",
        fixtures_dir=root / "fixtures",
        # No outputs configured; outputInfo lists every file the run left (sandbox.outputs).
        output_plan=OutputPlan(
            outputs=[],
            output_info="all",
            application_id="a" * 24,
            files_dir=root / "files",
            database=root / "sandbox.db",
            templates=TemplateScope(
                context,
                {"id": "6" * 24, "name": name},
                {"id": execution_id, "runStartedAt": "2024-05-01T12:00:01.000Z"},
                TemplateSettings(),
            ),
        ),
    )


def outcome_of(handle: RunHandle) -> RunOutcome:
    return wait_until(handle.poll, RUN_TIMEOUT, "the run to end")


def has_exited(pid: int) -> bool:
    """Gone, or a zombie: it has exited and only its exit status waits for a reaper."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@dataclass
class Finished:
    spec: RunSpec
    handle: RunHandle
    outcome: RunOutcome
    seconds: float  # from start_run to the outcome


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Finished]:
    """The runs that need no interaction, started together."""
    root = tmp_path_factory.mktemp("engine")
    specs = {
        "completed": make_spec(
            root,
            "completed",
            READS_INPUTS,
            inputs=[
                {
                    "inputType": "deviceData",
                    "fileName": "readings.csv",
                    "start": -3_600_000,
                    "end": 0,
                },
                {"inputType": "applicationFile", "fileName": "limit.txt", "filePath": "/limit.txt"},
            ],
            context='{"site": "north"}',
        ),
        "errored": make_spec(root, "errored", RAISES),
        "timeout": make_spec(root, "timeout", LOOPS, minutes=TIME_LIMIT_MINUTES),
        "dies": make_spec(root, "dies", DIES),
        "bad-template": make_spec(
            root,
            "bad-template",
            ['print("ran")'],
            inputs=[{"inputType": "eventData", "fileName": "{{ context.count }}.csv"}],
            context='{"total": 10}',
        ),
    }
    for name, demo in DEMOS.items():
        specs[f"demo-{name}"] = replace(
            make_spec(
                root,
                f"demo-{name}",
                None,
                inputs=demo["inputs"],
                context=json.dumps(demo["exampleContext"]),
            ),
            notebook_file=DEMO_DIR / demo["file"],
        )
    (root / "files" / "limit.txt").write_text("80")
    started = time.monotonic()
    with pytest.MonkeyPatch.context() as patch:
        for name, value in SECRETS.items():
            patch.setenv(name, value)
        handles = {name: start_run(spec) for name, spec in specs.items()}
    ended: dict[str, tuple[RunOutcome, float]] = {}

    def all_ended() -> bool:
        for name, handle in handles.items():
            if name not in ended and (outcome := handle.poll()) is not None:
                ended[name] = (outcome, time.monotonic() - started)
        return len(ended) == len(handles)

    wait_until(all_ended, RUN_TIMEOUT, "the runs to end", interval=0.1)
    return {name: Finished(specs[name], handles[name], *ended[name]) for name in specs}


def assert_phases_in_order(outcome: RunOutcome) -> None:
    phases = [
        outcome.started_at,
        outcome.inputs_completed_at,
        outcome.notebook_completed_at,
        outcome.outputs_completed_at,
    ]
    assert all(isinstance(p, datetime) and p.tzinfo is not None for p in phases)
    assert phases == sorted(phases)


def test_completed_run_reads_inputs_and_context_and_writes_outputs(finished):
    run = finished["completed"]
    outcome = run.outcome
    assert outcome.status == "completed", outcome.execution_errors
    assert outcome.execution_errors == []
    assert set(outcome.outputs) == {"reports/summary.json"} | ARTEFACTS
    summary = json.loads(outcome.outputs["reports/summary.json"].read_text())
    assert summary["site"] == "north"
    assert summary["rows"] == 3 * defaults.SAMPLE_POINTS
    assert summary["limit"] == "80"
    assert_phases_in_order(outcome)
    input_dir = run.spec.work_dir / "input"
    assert outcome.input_info == {
        "readings.csv": {"size": (input_dir / "readings.csv").stat().st_size},
        "limit.txt": {"size": 2},
    }


def test_the_kernel_is_this_interpreter_and_sees_no_private_variables(finished):
    summary = json.loads(finished["completed"].outcome.outputs["reports/summary.json"].read_text())
    assert Path(summary["python"]).resolve() == Path(sys.executable).resolve()
    assert {"INPUT_DIR", "OUTPUT_DIR", "PATH", "HOME"} <= set(summary["environment"])
    assert not SECRETS.keys() & set(summary["environment"])
    # nor can the notebook read them from its parent, the runner
    assert "PATH" in summary["parent_environment"]
    assert not SECRETS.keys() & set(summary["parent_environment"])


def test_the_kernel_environment_is_the_allow_list_and_the_run_folders(tmp_path):
    workdir = WorkDir(tmp_path)
    parent = {**SECRETS, "PATH": "/usr/bin", "LC_TIME": "C", "TZ": "UTC", "PYTHONPATH": "/x"}

    assert kernel_environment(parent, workdir) == {
        "PATH": "/usr/bin",
        "LC_TIME": "C",
        "TZ": "UTC",
        "INPUT_DIR": str(workdir.input_dir),
        "OUTPUT_DIR": str(workdir.output_dir),
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
    }


def test_completed_run_artefacts(finished):
    outputs = finished["completed"].outcome.outputs
    rows = 3 * defaults.SAMPLE_POINTS
    assert outputs["result.log"].read_text() == f"read {rows} rows for north\na warning\ndone\n"
    executed = nbformat.read(outputs["result.ipynb"], as_version=4)
    code = [c for c in executed.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == [1, 2, 3]
    assert code[0].outputs[0]["text"] == f"read {rows} rows for north\n"
    page = outputs["result.html"].read_text()
    assert page.startswith("<!DOCTYPE html>") and f"read {rows} rows for north" in page


def test_errored_run_reports_the_exception(finished):
    outcome = finished["errored"].outcome
    assert outcome.status == "errored"
    assert outcome.execution_errors == [{"name": "ValueError", "message": "bad reading 42"}]
    assert set(outcome.outputs) == ARTEFACTS | {"result.error.log"}
    error_log = outcome.outputs["result.error.log"].read_text()
    assert "raise ValueError" in error_log and "ValueError: bad reading 42" in error_log
    assert "\x1b[" not in error_log
    assert outcome.outputs["result.log"].read_text() == "before\n"
    assert_phases_in_order(outcome)


def test_run_over_its_time_limit_ends_in_timeout(finished):
    run = finished["timeout"]
    outcome = run.outcome
    assert outcome.status == "timeout"
    assert [e["name"] for e in outcome.execution_errors] == ["TimeoutError"]
    limit = TIME_LIMIT_MINUTES * 60
    notebook_phase = outcome.notebook_completed_at - outcome.inputs_completed_at
    assert notebook_phase >= timedelta(seconds=limit)
    assert run.seconds < limit + 30
    assert "ran out of time" in outcome.outputs["result.error.log"].read_text()
    assert outcome.outputs["result.log"].read_text() == "spinning\n"
    assert {"result.ipynb", "result.html"} <= set(outcome.outputs)
    assert_phases_in_order(outcome)


def test_a_kernel_that_dies_errors_the_run(finished):
    outcome = finished["dies"].outcome
    assert outcome.status == "errored"
    assert [e["name"] for e in outcome.execution_errors] == ["DeadKernelError"]
    assert "kernel died" in outcome.outputs["result.error.log"].read_text()


def test_cancel_after_the_end_keeps_the_outcome(finished):
    run = finished["completed"]
    run.handle.cancel()
    assert run.handle.poll() is run.outcome


def test_cancel_kills_the_kernel_and_what_it_started(tmp_path):
    handle = start_run(make_spec(tmp_path, "cancel", SPAWNS_AND_LOOPS))
    assert handle.progress().started_at is not None
    pids = tmp_path / "runs" / "cancel" / "output" / "pids"
    wait_until(pids.exists, RUN_TIMEOUT, "the kernel to record its pid")
    kernel_pid, child_pid = map(int, pids.read_text().split())
    assert not has_exited(kernel_pid) and not has_exited(child_pid)
    progress = handle.progress()
    assert progress.inputs_completed_at is not None and progress.notebook_completed_at is None

    handle.cancel()
    outcome = outcome_of(handle)
    assert outcome.status == "canceled"
    assert outcome.execution_errors == [] and outcome.outputs == {}
    assert outcome.started_at is not None and outcome.notebook_completed_at is None
    wait_until(lambda: has_exited(kernel_pid) and has_exited(child_pid), 5, "the kernel to end")
    assert has_exited(handle.pid)


def test_input_failure_errors_the_run_before_the_notebook(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/data.csv"
    spec = make_spec(
        tmp_path,
        "badinput",
        ['print("ran")'],
        inputs=[{"inputType": "externalUrl", "fileName": "data.csv", "sourceUrl": url}],
    )
    outcome = outcome_of(start_run(spec))
    assert outcome.status == "errored"
    [error] = outcome.execution_errors
    assert error["name"] == "InputError" and "'data.csv'" in error["message"]
    assert error["message"] in outcome.outputs["result.error.log"].read_text()
    assert outcome.inputs_completed_at is None and outcome.notebook_completed_at is None
    assert outcome.outputs["result.log"].read_text() == ""


def test_a_template_that_cannot_render_errors_the_run(finished):
    outcome = finished["bad-template"].outcome
    assert outcome.status == "errored"
    [error] = outcome.execution_errors
    assert error["name"] == "InputError"
    assert "fileName" in error["message"] and "context.count" in error["message"]
    assert error["message"] in outcome.outputs["result.error.log"].read_text()
    assert outcome.inputs_completed_at is None and outcome.notebook_completed_at is None


def test_unreadable_notebook_errors_the_run(tmp_path):
    spec = make_spec(tmp_path, "garbage", None)
    spec.notebook_file.write_text("this is not a notebook")
    outcome = outcome_of(start_run(spec))
    assert outcome.status == "errored"
    assert "cannot be read" in outcome.execution_errors[0]["message"]
    assert set(outcome.outputs) == {"result.log", "result.error.log"}


def test_a_runner_that_dies_is_reported(tmp_path):
    handle = start_run(make_spec(tmp_path, "killed", ['print("ran")']))
    os.kill(handle.pid, signal.SIGKILL)
    outcome = outcome_of(handle)
    assert outcome.status == "errored"
    [error] = outcome.execution_errors
    assert error["name"] == "RunnerError" and "exited with status -9" in error["message"]
    assert error["message"] in outcome.outputs["result.error.log"].read_text()


def test_a_runner_that_overruns_is_stopped_by_the_engine(tmp_path, monkeypatch):
    monkeypatch.setattr(defaults, "RUN_OVERHEAD", 0.0)
    handle = start_run(make_spec(tmp_path, "overrun", LOOPS, minutes=0.001))
    outcome = outcome_of(handle)
    assert outcome.status == "timeout"
    assert "was stopped" in outcome.execution_errors[0]["message"]
    assert {"result.log", "result.error.log"} <= set(outcome.outputs)
    assert outcome.outputs_completed_at is not None
    assert has_exited(handle.pid)


def test_demo_ingest_summarises_its_device_data(finished):
    outcome = finished["demo-ingest"].outcome
    assert outcome.status == "completed", outcome.execution_errors
    rows = outcome.outputs["summary.csv"].read_text().splitlines()
    assert rows[0] == "ID,Device Name,Readings,Min,Max,Mean"
    assert len(rows) == 4  # three sample devices
    assert all(line.split(",")[2] == str(defaults.SAMPLE_POINTS) for line in rows[1:])


def test_demo_report_writes_its_context_into_a_report(finished):
    outcome = finished["demo-report"].outcome
    assert outcome.status == "completed", outcome.execution_errors
    report = outcome.outputs["report.md"].read_text()
    assert report.startswith("# Daily report\n") and '**site**: "north"' in report


def test_demo_flaky_fails_when_the_context_says_so(finished):
    outcome = finished["demo-flaky"].outcome
    assert outcome.status == "errored"
    assert outcome.execution_errors == [{"name": "RuntimeError", "message": "simulated failure"}]


def test_run_spec_survives_json(tmp_path):
    spec = make_spec(tmp_path, "json", cells=None, context='{"a": 1}', minutes=0.5)
    assert RunSpec.from_json(spec.to_json()) == spec
