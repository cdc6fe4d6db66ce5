"""Materialising notebook inputs into INPUT_DIR: every input type, fixtures, generated data,
templates and the refusals (path escapes, bad templates, failed downloads)."""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sandbox import defaults
from sandbox.inputs import InputError, materialize_inputs
from sandbox.templates import TemplateSettings, parse_context, renderer
from service.runtime.processes import free_port
from tests.support.http_server import Reply

QUERY_TIME = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
HOUR_MS = 3_600_000
DEVICE_ID = "5c926894a111ea00063978ac"
TABLE_ID = "5c925132a111ea00063978a7"
TEMPLATES = TemplateSettings()  # the default: {{ path }} lookups only


@pytest.fixture
def dirs(tmp_path: Path) -> dict[str, Path]:
    paths = {name: tmp_path / name for name in ("input", "files", "fixtures")}
    for name in ("files", "fixtures"):
        paths[name].mkdir()
    return paths


def materialize(
    dirs, inputs, context: str | None = None, relative_to=QUERY_TIME, templates=TEMPLATES
):
    parsed = parse_context(context)
    render = renderer(
        parsed, notebook={"name": "weekly"}, execution={"id": "e1"}, settings=templates
    )
    return materialize_inputs(
        inputs,
        dirs["input"],
        relative_to,
        dirs["files"],
        dirs["fixtures"],
        context=parsed,
        render=render,
    )


def read_csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


def ms(when: datetime) -> int:
    return round(when.timestamp() * 1000)


# context.json


def test_context_json_holds_the_parsed_template_context(dirs):
    materialize(dirs, [], '{"site": "north", "limits": [1, 2]}')
    assert json.loads((dirs["input"] / "context.json").read_text()) == {
        "site": "north",
        "limits": [1, 2],
    }


@pytest.mark.parametrize("context", [None, "", "  "])
def test_context_json_is_an_empty_object_without_a_context(dirs, context):
    assert materialize(dirs, [], context) == {}
    assert json.loads((dirs["input"] / "context.json").read_text()) == {}


def test_a_context_that_is_not_json_is_refused(dirs):
    with pytest.raises(InputError, match="templateContext is not valid JSON"):
        materialize(dirs, [], "{site: north}")


def test_a_context_of_up_to_32767_characters_is_accepted_whatever_its_bytes(dirs):
    assert defaults.CONTEXT_MAX_LENGTH == 32767
    blob = "é" * (defaults.CONTEXT_MAX_LENGTH - len('{"blob": ""}'))
    longest = json.dumps({"blob": blob}, ensure_ascii=False)
    assert len(longest) == 32767 and len(longest.encode()) > 32767
    materialize(dirs, [], longest)
    assert json.loads((dirs["input"] / "context.json").read_text()) == {"blob": blob}
    too_long = json.dumps({"blob": blob + "é"}, ensure_ascii=False)
    with pytest.raises(InputError, match="is 32768 characters long; the limit is 32767"):
        materialize(dirs, [], too_long)


# externalUrl


def test_external_url_is_fetched(dirs, http_server):
    http_server.reply(Reply(200, "a,b\n1,2\n"))
    info = materialize(
        dirs,
        [
            {
                "inputType": "externalUrl",
                "fileName": "remote.csv",
                "sourceUrl": http_server.url + "/x.csv",
            }
        ],
    )
    assert (dirs["input"] / "remote.csv").read_text() == "a,b\n1,2\n"
    assert info == {"remote.csv": {"size": 8}}
    assert [r.path for r in http_server.requests] == ["/x.csv"]


def test_external_url_error_status_is_an_input_error_without_the_query(dirs, http_server):
    http_server.reply(Reply(404, "nope"))
    url = http_server.url + "/data.csv?token=s3cr3t-value"
    with pytest.raises(InputError) as caught:
        materialize(dirs, [{"inputType": "externalUrl", "fileName": "d.csv", "sourceUrl": url}])
    message = str(caught.value)
    assert "'d.csv'" in message and "HTTP 404" in message and "/data.csv" in message
    assert "s3cr3t" not in message


def test_external_url_that_cannot_be_reached_is_an_input_error(dirs):
    url = f"http://127.0.0.1:{free_port()}/gone?key=s3cr3t-value"
    with pytest.raises(InputError, match="could not connect") as caught:
        materialize(dirs, [{"inputType": "externalUrl", "fileName": "d.csv", "sourceUrl": url}])
    assert "s3cr3t" not in str(caught.value)


def test_external_url_must_be_http(dirs, tmp_path):
    url = f"file://{tmp_path}/secret"
    with pytest.raises(InputError, match="only http and https"):
        materialize(dirs, [{"inputType": "externalUrl", "fileName": "d.csv", "sourceUrl": url}])


def test_a_redirect_is_followed(dirs, http_server):
    http_server.reply(Reply(302, headers={"Location": "/moved.csv"}), Reply(200, "a\n1\n"))
    spec = {"inputType": "externalUrl", "fileName": "r.csv", "sourceUrl": http_server.url + "/r"}
    assert materialize(dirs, [spec]) == {"r.csv": {"size": 4}}
    assert [r.path for r in http_server.requests] == ["/r", "/moved.csv"]


def test_a_redirect_loop_is_given_up_after_the_redirect_limit(dirs, http_server):
    http_server.default = Reply(302, headers={"Location": "/again"})
    spec = {"inputType": "externalUrl", "fileName": "l.csv", "sourceUrl": http_server.url + "/l"}
    with pytest.raises(InputError, match=r"'l.csv'.* redirected more than 5 times"):
        materialize(dirs, [spec])
    assert len(http_server.requests) == 1 + defaults.INPUT_MAX_REDIRECTS


def test_a_file_over_the_size_limit_fails_the_input(dirs, http_server, monkeypatch):
    monkeypatch.setattr(defaults, "INPUT_MAX_BYTES", 1000)
    http_server.reply(Reply(200, b"x" * 1000), Reply(200, b"x" * 1001))
    spec = {"inputType": "externalUrl", "fileName": "big.csv", "sourceUrl": http_server.url}

    assert materialize(dirs, [spec]) == {"big.csv": {"size": 1000}}
    with pytest.raises(InputError, match=r"'big.csv'.* larger than the limit of 1000 bytes"):
        materialize(dirs, [spec])


def test_a_compressed_file_counts_as_it_unpacks(dirs, http_server, monkeypatch):
    monkeypatch.setattr(defaults, "INPUT_MAX_BYTES", 1000)
    body = gzip.compress(b"0" * 100_000)
    assert len(body) < 1000
    http_server.reply(Reply(200, body, headers={"Content-Encoding": "gzip"}))
    spec = {"inputType": "externalUrl", "fileName": "bomb.csv", "sourceUrl": http_server.url}
    with pytest.raises(InputError, match=r"'bomb.csv'.* larger than the limit of 1000 bytes"):
        materialize(dirs, [spec])


# applicationFile


def test_application_file_is_copied_from_the_files_folder(dirs):
    (dirs["files"] / "config").mkdir()
    (dirs["files"] / "config" / "thresholds.json").write_text('{"max": 80}')
    info = materialize(
        dirs,
        [
            {
                "inputType": "applicationFile",
                "fileName": "thresholds.json",
                "filePath": "/config/thresholds.json",
            }
        ],
    )
    assert (dirs["input"] / "thresholds.json").read_text() == '{"max": 80}'
    assert info == {"thresholds.json": {"size": 11}}


@pytest.mark.parametrize(
    "file_path", ["../secret.txt", "/../secret.txt", "/config/../../secret.txt", "/", "link.txt"]
)
def test_application_file_outside_the_files_folder_is_refused(dirs, tmp_path, file_path):
    (tmp_path / "secret.txt").write_text("top secret")
    (dirs["files"] / "config").mkdir()
    (dirs["files"] / "link.txt").symlink_to(tmp_path / "secret.txt")
    with pytest.raises(InputError, match="outside the application's files"):
        materialize(
            dirs, [{"inputType": "applicationFile", "fileName": "s.txt", "filePath": file_path}]
        )
    assert not (dirs["input"] / "s.txt").exists()


def test_missing_application_file_is_an_input_error(dirs):
    with pytest.raises(InputError, match="'/nope.csv' does not exist"):
        materialize(
            dirs, [{"inputType": "applicationFile", "fileName": "n.csv", "filePath": "/nope.csv"}]
        )


# fixtures


def test_fixture_by_type_and_file_name_wins_over_the_plain_file_name(dirs):
    (dirs["fixtures"] / "deviceData").mkdir()
    (dirs["fixtures"] / "deviceData" / "readings.csv").write_text("by type\n")
    (dirs["fixtures"] / "readings.csv").write_text("by name\n")
    spec = {"inputType": "deviceData", "fileName": "readings.csv", "start": -HOUR_MS, "end": 0}
    materialize(dirs, [spec])
    assert (dirs["input"] / "readings.csv").read_text() == "by type\n"


def test_fixture_by_file_name_is_preferred_over_generated_data(dirs):
    (dirs["fixtures"] / "events.json").write_text('[{"id": 1}]')
    info = materialize(
        dirs, [{"inputType": "eventData", "fileName": "events.json", "format": "json"}]
    )
    assert (dirs["input"] / "events.json").read_text() == '[{"id": 1}]'
    assert info == {"events.json": {"size": 11}}


def test_data_table_fixture_by_table_id(dirs):
    (dirs["fixtures"] / "dataTable").mkdir()
    (dirs["fixtures"] / "dataTable" / f"{TABLE_ID}.csv").write_text("id,name\n1,a\n")
    materialize(
        dirs, [{"inputType": "dataTable", "fileName": "table.csv", "dataTableId": TABLE_ID}]
    )
    assert (dirs["input"] / "table.csv").read_text() == "id,name\n1,a\n"


# generated data


def test_generated_device_data_spans_the_time_window(dirs):
    spec = {
        "inputType": "deviceData",
        "fileName": "readings.csv",
        "deviceIds": [DEVICE_ID],
        "attributes": ["temperature", "pressure"],
        "start": -6 * HOUR_MS,
        "end": -HOUR_MS,
    }
    materialize(dirs, [spec])
    text = (dirs["input"] / "readings.csv").read_text()
    assert text.splitlines()[0] == "ID,Device Name,Timestamp,temperature,pressure"
    rows = read_csv(dirs["input"] / "readings.csv")
    stamps = [int(r["Timestamp"]) for r in rows]
    assert min(stamps) == ms(QUERY_TIME - timedelta(hours=6))
    assert max(stamps) == ms(QUERY_TIME - timedelta(hours=1))
    assert stamps == sorted(stamps)
    assert {r["ID"] for r in rows} == {DEVICE_ID}
    assert len(rows) == defaults.SAMPLE_POINTS
    assert all(0 < float(r["temperature"]) < 100 for r in rows)


def test_generated_data_is_deterministic_for_a_query_time(dirs):
    spec = {"inputType": "deviceData", "fileName": "d.csv", "start": -HOUR_MS, "end": 0}
    materialize(dirs, [spec])
    first = (dirs["input"] / "d.csv").read_bytes()
    materialize(dirs, [spec])
    assert (dirs["input"] / "d.csv").read_bytes() == first
    materialize(dirs, [spec], relative_to=QUERY_TIME + timedelta(minutes=1))
    assert (dirs["input"] / "d.csv").read_bytes() != first


def test_generated_connection_history_spans_the_time_window(dirs):
    spec = {
        "inputType": "deviceConnectionHistory",
        "fileName": "connections.csv",
        "start": -24 * HOUR_MS,
        "end": 0,
    }
    materialize(dirs, [spec])
    rows = read_csv(dirs["input"] / "connections.csv")
    assert list(rows[0]) == ["ID", "Device Name", "Timestamp", "Status"]
    stamps = [int(r["Timestamp"]) for r in rows]
    assert min(stamps) == ms(QUERY_TIME - timedelta(hours=24))
    assert max(stamps) == ms(QUERY_TIME)
    assert {r["Status"] for r in rows} == {"connected", "disconnected"}


def test_generated_device_metadata_as_csv_and_json(dirs):
    tags = [{"key": "floor", "value": "2"}]
    materialize(
        dirs,
        [
            {"inputType": "deviceMetadata", "fileName": "devices.csv", "deviceTags": tags},
            {"inputType": "deviceMetadata", "fileName": "devices.json", "format": "json"},
        ],
    )
    rows = read_csv(dirs["input"] / "devices.csv")
    assert rows and all(r["Tags"] == "floor=2" for r in rows)
    assert list(rows[0])[:2] == ["ID", "Device Name"]
    records = json.loads((dirs["input"] / "devices.json").read_text())
    assert records and {"id", "name", "tags", "creationDate"} <= set(records[0])


def test_generated_event_data_and_data_table(dirs):
    materialize(
        dirs,
        [
            {"inputType": "eventData", "fileName": "events.csv"},
            {"inputType": "eventData", "fileName": "events.json", "format": "json"},
            {"inputType": "dataTable", "fileName": "table.csv", "dataTableId": TABLE_ID},
        ],
    )
    events = read_csv(dirs["input"] / "events.csv")
    assert events and {"id", "subject", "level", "creationDate"} <= set(events[0])
    assert all(e["creationDate"] <= "2024-05-01T12:00:00.000Z" for e in events)
    assert isinstance(json.loads((dirs["input"] / "events.json").read_text()), list)
    table = read_csv(dirs["input"] / "table.csv")
    assert list(table[0])[:3] == ["id", "createdAt", "updatedAt"]


# templates and validation


def test_templates_render_with_the_context(dirs):
    spec = {
        "inputType": "deviceData",
        "fileName": "{{ context.site }}-{{context.kind}}.csv",
        "deviceIds": ["{{ context.device }}"],
        "start": -HOUR_MS,
        "end": 0,
    }
    context = json.dumps({"site": "north", "kind": "raw", "device": DEVICE_ID})
    info = materialize(dirs, [spec], context)
    assert list(info) == ["north-raw.csv"]
    assert {r["ID"] for r in read_csv(dirs["input"] / "north-raw.csv")} == {DEVICE_ID}


def test_an_undefined_template_variable_is_an_input_error(dirs):
    spec = {"inputType": "eventData", "fileName": "{{ context.missing }}.csv"}
    with pytest.raises(InputError, match=r"fileName: .* refers to context\.missing"):
        materialize(dirs, [spec], "{}")


@pytest.mark.parametrize(
    ("template", "raised"),
    [
        ("{{ total / count }}", "ZeroDivisionError"),
        ("{{ site + total }}", "TypeError"),
        ("{{ [site, total] | sort }}", "TypeError"),  # raised inside a filter
        ("{{ site | wordwrap(0) }}", "ValueError"),
        ("{{ '%d' | format(site) }}", "TypeError"),
    ],
)
def test_an_exception_while_rendering_jinja_is_an_input_error(dirs, template, raised):
    spec = {"inputType": "eventData", "fileName": template + ".csv"}
    context = json.dumps({"total": 10, "count": 0, "site": "north"})
    jinja = TemplateSettings(syntax="jinja", context_keys=True)
    with pytest.raises(InputError, match=rf"inputs\[0\] \(eventData\) fileName: .*{raised}"):
        materialize(dirs, [spec], context, templates=jinja)


@pytest.mark.parametrize("name", ["../escape.csv", "..", "a/b.csv"])
def test_a_rendered_file_name_cannot_leave_input_dir(dirs, name):
    spec = {"inputType": "eventData", "fileName": "{{ context.name }}"}
    with pytest.raises(InputError, match="may only contain"):
        materialize(dirs, [spec], json.dumps({"name": name}))
    assert os.listdir(dirs["input"]) == ["context.json"]


def test_duplicate_file_names_are_refused(dirs):
    spec = {"inputType": "eventData", "fileName": "e.csv"}
    with pytest.raises(InputError, match="used more than once"):
        materialize(dirs, [spec, spec])


def test_a_window_that_ends_before_it_starts_is_refused(dirs):
    spec = {"inputType": "deviceData", "fileName": "d.csv", "start": 0, "end": -HOUR_MS}
    with pytest.raises(InputError, match="start .* is after end"):
        materialize(dirs, [spec])


def test_a_rendered_device_id_must_be_an_object_id(dirs):
    spec = {
        "inputType": "deviceData",
        "fileName": "d.csv",
        "deviceIds": ["{{ context.device }}"],
        "start": -HOUR_MS,
        "end": 0,
    }
    with pytest.raises(InputError, match="not a 24-character hexadecimal id"):
        materialize(dirs, [spec], '{"device": "kitchen"}')
