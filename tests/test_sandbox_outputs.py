"""Outputs go where the notebook's configuration says: Application Files (public or private),
data tables and temporary URLs; outputInfo lists what its rule says, never an unconfigured file.
Real notebooks in real kernels through the sandbox's HTTP API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
import requests
from nbformat.v4 import new_code_cell, new_notebook

from tests.support.sandbox import SandboxApp, SandboxProcess

KERNEL_TIMEOUT = 90.0  # seconds: a cold kernel start on a busy 2-core machine

WRITES_FILES = """
import os
out = os.environ['OUTPUT_DIR']
os.makedirs(os.path.join(out, 'charts', 'daily'), exist_ok=True)
for name, text in {
    'report.csv': 'device,value\\na,1\\n',
    'charts/a.txt': 'chart a',
    'charts/daily/b.txt': 'chart b',
    'link.txt': 'shared',
    'extra.txt': 'not an output',
}.items():
    open(os.path.join(out, name), 'w').write(text)
print('wrote the files')
"""

OUTPUTS = [
    {
        "outputType": "executionResult",
        "fileName": "result.html",
        "destinationDirectoryTemplate": "/{{notebook.name}}/{{execution.runStartedAt}}",
        "destinationFileNameTemplate": "run.html",
        "destinationPrivate": True,
    },
    {
        "outputType": "file",
        "fileName": "report.csv",
        "destinationDirectoryTemplate": "reports/{{ context.site }}",
        "destinationFileNameTemplate": "{{notebook.name}}.csv",
    },
    {
        "outputType": "directory",
        "directoryName": "charts",
        "destinationDirectoryTemplate": "charts-{{ context.site }}",
        "destinationPrivate": False,
    },
    {"outputType": "temporaryUrl", "fileName": "link.txt"},
]


def _notebook(*sources: str) -> str:
    return nbformat.writes(new_notebook(cells=[new_code_cell(s) for s in sources]))


def _run(app: SandboxApp, notebook_id: str, context: dict | None = None) -> dict:
    execution_id = app.execute(notebook_id, templateContext=json.dumps(context or {}))
    return app.wait_for_status(notebook_id, execution_id, timeout=KERNEL_TIMEOUT)


def _file(sandbox: SandboxProcess, app: str, path: str, token: bool) -> requests.Response:
    headers = {"Authorization": f"Bearer {sandbox.token}"} if token else {}
    url = f"{sandbox.url}/_sandbox/applications/{app}/files/{path}"
    return requests.get(url, headers=headers, timeout=10)


def test_each_output_type_lands_where_configured(
    sandbox: SandboxProcess, sandbox_app: SandboxApp
) -> None:
    notebook = sandbox_app.create_notebook(
        "daily", notebook=_notebook(WRITES_FILES), outputs=OUTPUTS
    )
    record = _run(sandbox_app, notebook["id"], {"site": "north"})

    assert record["status"] == "completed", record["executionErrors"]
    info = record["outputInfo"]
    assert set(info) == {
        "result.html",
        "report.csv",
        "charts/a.txt",
        "charts/daily/b.txt",
        "link.txt",
    }  # extra.txt, result.log and result.ipynb are not configured outputs
    assert requests.get(info["link.txt"]["url"], timeout=10).text == "shared"
    assert info["report.csv"]["contentType"] == "text/csv"
    assert requests.get(info["report.csv"]["url"], timeout=10).text == "device,value\na,1\n"

    files = sandbox.files_dir(sandbox_app)
    run_html = files / "daily" / record["runStartedAt"] / "run.html"
    assert "wrote the files" in run_html.read_text()
    assert (files / "reports" / "north" / "daily.csv").read_text() == "device,value\na,1\n"
    assert (files / "charts-north" / "a.txt").read_text() == "chart a"
    assert (files / "charts-north" / "daily" / "b.txt").read_text() == "chart b"
    assert not any(path.name in ("extra.txt", "link.txt") for path in files.rglob("*"))

    private = f"daily/{record['runStartedAt']}/run.html"
    refused = _file(sandbox, sandbox_app, private, token=False)
    assert refused.status_code == 401 and refused.json()["type"] == "Unauthorized"
    assert "wrote the files" in _file(sandbox, sandbox_app, private, token=True).text
    public = _file(sandbox, sandbox_app, "reports/north/daily.csv", token=False)
    assert public.status_code == 200 and public.text == "device,value\na,1\n"
    assert _file(sandbox, sandbox_app, "charts-north/daily/b.txt", token=False).text == "chart b"
    assert _file(sandbox, sandbox_app, "reports/north/none.csv", token=True).status_code == 404


def test_file_no_output_wrote_is_private(sandbox: SandboxProcess, sandbox_app: SandboxApp) -> None:
    (sandbox.files_dir(sandbox_app) / "by-hand.txt").write_text("placed by hand")
    assert _file(sandbox, sandbox_app, "by-hand.txt", token=False).status_code == 401
    assert _file(sandbox, sandbox_app, "by-hand.txt", token=True).text == "placed by hand"
    assert _file(sandbox, sandbox_app, "%2E%2E/%2E%2E/sandbox.db", token=True).status_code == 404


def test_data_table_import_honours_both_flags(
    sandbox: SandboxProcess, sandbox_app: SandboxApp
) -> None:
    table = sandbox.client.create_data_table(sandbox_app, "readings", ["device"])
    writes_csv = _notebook(
        "import json, os\n"
        "context = json.load(open(os.path.join(os.environ['INPUT_DIR'], 'context.json')))\n"
        "open(os.path.join(os.environ['OUTPUT_DIR'], 'rows.csv'), 'w').write(context['csv'])"
    )

    def import_into_table(name: str, csv: str, **flags: bool) -> None:
        output = {
            "outputType": "dataTable",
            "fileName": "rows.csv",
            "dataTableId": "{{ context.table }}",
            **flags,
        }
        notebook = sandbox_app.create_notebook(name, notebook=writes_csv, outputs=[output])
        record = _run(sandbox_app, notebook["id"], {"csv": csv, "table": table["id"]})
        assert record["status"] == "completed", record["executionErrors"]
        assert record["outputInfo"] == {}  # a data table is not a file

    def rows() -> list[dict]:
        items = sandbox.client.data_table_rows(sandbox_app, table["id"])["items"]
        return [
            {k: v for k, v in row.items() if k not in ("id", "createdAt", "updatedAt")}
            for row in items
        ]

    import_into_table("keep", "device,value\na,1\nb,2\n")
    assert rows() == [{"device": "a"}, {"device": "b"}]  # value is not a column: left out

    import_into_table(
        "add", "device,value\nc,3\n", createMissingColumns=True, truncateExistingTable=False
    )
    assert rows() == [{"device": "a"}, {"device": "b"}, {"device": "c", "value": "3"}]
    described = sandbox.call(
        "GET", f"/_sandbox/applications/{sandbox_app}/data-tables/{table['id']}"
    )
    assert [column["name"] for column in described["columns"]] == ["device", "value"]

    import_into_table("replace", "value,device\n4,d\n", truncateExistingTable=True)
    assert rows() == [{"value": "4", "device": "d"}]


def test_missing_output_file_or_table_fails_the_run(sandbox_app: SandboxApp) -> None:
    notebook = sandbox_app.create_notebook(
        "forgets",
        notebook=_notebook("print('wrote nothing')"),
        outputs=[
            {"outputType": "executionResult", "fileName": "result.error.log"},
            {"outputType": "temporaryUrl", "fileName": "summary.csv"},
        ],
    )
    record = _run(sandbox_app, notebook["id"])
    assert record["status"] == "errored"
    (error,) = record["executionErrors"]
    assert error["name"] == "OutputError" and "summary.csv" in error["message"]
    assert record["outputInfo"] == {}  # result.error.log did not exist when it was delivered

    table = sandbox_app.create_notebook(
        "no-table",
        notebook=_notebook(
            "import os\n"
            "open(os.path.join(os.environ['OUTPUT_DIR'], 'a.csv'), 'w').write('x\\n1\\n')"
        ),
        outputs=[{"outputType": "dataTable", "fileName": "a.csv", "dataTableId": "f" * 24}],
    )
    record = _run(sandbox_app, table["id"])
    assert record["status"] == "errored"
    assert "does not exist" in record["executionErrors"][0]["message"]


@pytest.fixture(scope="module")
def temporary_urls_only(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxProcess]:
    process = SandboxProcess(
        tmp_path_factory.mktemp("sandbox-temporary-urls") / "data",
        options=["--output-info", "temporary-urls"],
    ).start()
    yield process
    process.stop()


def test_output_info_rule_temporary_urls_lists_only_them(
    temporary_urls_only: SandboxProcess,
) -> None:
    app = SandboxApp(temporary_urls_only.create_application("rules"), temporary_urls_only)
    notebook = app.create_notebook("daily", notebook=_notebook(WRITES_FILES), outputs=OUTPUTS)
    record = _run(app, notebook["id"], {"site": "south"})
    assert record["status"] == "completed", record["executionErrors"]
    assert set(record["outputInfo"]) == {"link.txt"}
    files: Path = temporary_urls_only.files_dir(app)
    assert (files / "reports" / "south" / "daily.csv").is_file()  # still delivered
