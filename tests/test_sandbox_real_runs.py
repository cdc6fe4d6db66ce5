"""Real notebooks in real kernels, end to end through the sandbox's HTTP API and callbacks."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import nbformat
import requests
from nbformat.v4 import new_code_cell, new_notebook

from service.runtime.processes import wait_until
from tests.support.http_server import Reply, ScriptedServer
from tests.support.processes import alive
from tests.support.sandbox import LOG_OUTPUTS, SandboxApp, SandboxProcess

KERNEL_TIMEOUT = 90.0  # seconds: a cold kernel start on a busy 2-core machine


def _notebook(*sources: str) -> str:
    return nbformat.writes(new_notebook(cells=[new_code_cell(s) for s in sources]))


def _callback(server: ScriptedServer, execution_id: str) -> dict:
    def arrived() -> dict | None:
        for request in server.requests:
            if request.path == "/callback" and request.json()["execution"]["id"] == execution_id:
                return request.json()
        return None

    return wait_until(arrived, 15, f"the callback of {execution_id}")


def test_notebook_reads_inputs_and_context_and_writes_outputs(
    sandbox: SandboxProcess, sandbox_app: SandboxApp, http_server: ScriptedServer
) -> None:
    (sandbox.files_dir(sandbox_app) / "readings.csv").write_text("device,value\na,2\nb,5\n")
    notebook = sandbox_app.create_notebook(
        "sum",
        notebook=_notebook(
            "import csv, json, os",
            "rows = list(csv.DictReader(open(os.path.join(os.environ['INPUT_DIR'], 'data.csv'))))\n"
            "context = json.load(open(os.path.join(os.environ['INPUT_DIR'], 'context.json')))",
            "total = sum(int(r['value']) for r in rows) * context['factor']\n"
            "open(os.path.join(os.environ['OUTPUT_DIR'], 'total.txt'), 'w').write(str(total))\n"
            "print('total is', total)",
        ),
        inputs=[
            {"inputType": "applicationFile", "fileName": "data.csv", "filePath": "readings.csv"}
        ],
        outputs=[
            {"outputType": "temporaryUrl", "fileName": "total.txt"},
            {"outputType": "executionResult", "fileName": "result.html"},
        ],
    )
    execution_id = sandbox_app.execute(
        notebook["id"],
        templateContext=json.dumps({"factor": 3}),
        callbackUrl=f"{http_server.url}/callback",
    )
    record = sandbox_app.wait_for_status(notebook["id"], execution_id, timeout=KERNEL_TIMEOUT)

    assert record["status"] == "completed", record["executionErrors"]
    assert record["runStartedAt"] <= record["inputsCompletedAt"] <= record["notebookCompletedAt"]
    assert record["notebookCompletedAt"] <= record["outputsCompletedAt"]
    outputs = record["outputInfo"]
    assert requests.get(outputs["total.txt"]["url"], timeout=10).text == "21"
    html = requests.get(outputs["result.html"]["url"], timeout=10)
    assert html.status_code == 200 and "total is 21" in html.text
    assert outputs["result.html"]["contentType"] == "text/html"
    data = record["inputInfo"]["data.csv"]
    assert data["size"] == len("device,value\na,2\nb,5\n")
    assert requests.get(data["url"], timeout=10).text.startswith("device,value")

    callback = _callback(http_server, execution_id)
    assert callback["success"] is True
    assert callback["notebook"]["id"] == notebook["id"]
    assert callback["execution"] == record


def test_notebook_that_raises_ends_errored(
    sandbox_app: SandboxApp, http_server: ScriptedServer
) -> None:
    notebook = sandbox_app.create_notebook(
        "raises",
        notebook=_notebook("raise ValueError('the sensor data is empty')"),
        outputs=LOG_OUTPUTS,
    )
    execution_id = sandbox_app.execute(notebook["id"], callbackUrl=f"{http_server.url}/callback")
    record = sandbox_app.wait_for_status(notebook["id"], execution_id, timeout=KERNEL_TIMEOUT)

    assert record["status"] == "errored"
    assert any("the sensor data is empty" in e["message"] for e in record["executionErrors"])
    error_log = requests.get(record["outputInfo"]["result.error.log"]["url"], timeout=10)
    assert "ValueError" in error_log.text and "the sensor data is empty" in error_log.text
    callback = _callback(http_server, execution_id)
    assert callback["success"] is False and callback["execution"]["status"] == "errored"


def test_notebook_that_loops_times_out(
    sandbox: SandboxProcess, http_server: ScriptedServer
) -> None:
    app = SandboxApp(sandbox.create_application(maxAllowedRunMinutes=0.05), sandbox)
    notebook = app.create_notebook("loops", notebook=_notebook("while True:\n    pass"))
    execution_id = app.execute(notebook["id"], callbackUrl=f"{http_server.url}/callback")
    record = app.wait_for_status(notebook["id"], execution_id, timeout=KERNEL_TIMEOUT)

    assert record["status"] == "timeout"
    assert record["maxAllowedRunMinutes"] == 0.05
    assert record["executionErrors"]
    assert _callback(http_server, execution_id)["execution"]["status"] == "timeout"


def test_canceled_run_kills_its_kernel(
    sandbox_app: SandboxApp, http_server: ScriptedServer, tmp_path: Path
) -> None:
    pid_file = tmp_path / "kernel.pid"
    notebook = sandbox_app.create_notebook(
        "sleeps",
        notebook=_notebook(
            "import json, os, time",
            "context = json.load(open(os.path.join(os.environ['INPUT_DIR'], 'context.json')))\n"
            "open(context['pidFile'], 'w').write(str(os.getpid()))\n"
            "time.sleep(600)",
        ),
    )
    http_server.default = Reply(204)
    execution_id = sandbox_app.execute(
        notebook["id"],
        templateContext=json.dumps({"pidFile": str(pid_file)}),
        callbackUrl=f"{http_server.url}/callback",
    )
    wait_until(lambda: pid_file.exists() and pid_file.read_text(), KERNEL_TIMEOUT, "the kernel")
    kernel = int(pid_file.read_text())

    sandbox_app.cancel(notebook["id"], execution_id)
    record = sandbox_app.wait_for_status(notebook["id"], execution_id, timeout=30)

    assert record["status"] == "canceled"
    wait_until(lambda: not alive(kernel), 10, "the kernel to be gone")
    assert _callback(http_server, execution_id)["execution"]["status"] == "canceled"


def test_input_data_export_zips_what_a_run_would_get(
    sandbox: SandboxProcess, sandbox_app: SandboxApp, http_server: ScriptedServer
) -> None:
    (sandbox.files_dir(sandbox_app) / "plan.csv").write_text("step\n1\n")
    inputs = [
        {"inputType": "applicationFile", "fileName": "plan.csv", "filePath": "plan.csv"},
        {
            "inputType": "deviceData",
            "fileName": "{{context.site}}-data.csv",
            "start": -3600000,
            "end": 0,
        },
    ]
    notebook = sandbox_app.create_notebook("export", notebook=_notebook("1"), inputs=inputs)
    options = {"relativeTo": 1700000000000, "templateContext": json.dumps({"site": "north"})}
    client = sandbox.losant_client()
    job = client.notebook.request_input_data_export(
        applicationId=sandbox_app.id,
        notebookId=notebook["id"],
        exportOptions={**options, "callbackUrl": f"{http_server.url}/export"},
    )

    (delivered,) = http_server.wait_for_requests(1, timeout=KERNEL_TIMEOUT)
    body = delivered.json()
    assert (delivered.path, body["jobId"], body["success"]) == ("/export", job["jobId"], True)
    archive = requests.get(body["downloadUrl"], timeout=10)
    assert archive.headers["Content-Type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(archive.content)) as exported:
        names = set(exported.namelist())
        assert exported.read("plan.csv") == b"step\n1\n"
        assert json.loads(exported.read("context.json")) == {"site": "north"}
        exported_data = exported.read("north-data.csv")
    shown = sandbox.call("GET", f"/_sandbox/applications/{sandbox_app}/exports/{job['jobId']}")
    assert shown["status"] == "completed" and shown["downloadUrl"] == body["downloadUrl"]

    run = sandbox_app.execute(notebook["id"], **options)
    record = sandbox_app.wait_for_status(notebook["id"], run, timeout=KERNEL_TIMEOUT)
    assert names == {*record["inputInfo"], "context.json"}
    run_data = requests.get(record["inputInfo"]["north-data.csv"]["url"], timeout=10).content
    assert run_data == exported_data


def test_relative_data_folder_runs_notebooks(tmp_path: Path) -> None:
    """The default `--data` is relative; runs must not depend on the runner's working folder."""
    sandbox = SandboxProcess(Path("relative-data"), cwd=tmp_path).start()
    try:
        application = SandboxApp(sandbox.create_application(), sandbox)
        notebook = application.create_notebook("relative", notebook=_notebook("print('ok')"))
        execution_id = application.execute(notebook["id"])
        record = application.wait_for_status(notebook["id"], execution_id, timeout=KERNEL_TIMEOUT)
        assert record["status"] == "completed", record.get("executionErrors")
        assert (tmp_path / "relative-data").is_dir()
    finally:
        sandbox.stop()
