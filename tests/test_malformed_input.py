"""Malformed input gets a 400 (or, on the command line, one line and exit status 2), never a
server error or a false "unavailable": deep JSON, NaN and Infinity, numbers too large, bad
cursors, limits and dates. The web part runs against the real stack, over HTTP."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import cast

import pytest
import requests

from service import defaults, json_input
from service.cli import main
from service.events.hints import parse_hint
from tests.support.sandbox import SandboxApp
from tests.support.stack import ServiceStack
from tests.test_config import VALID

DEEP = "[" * 100_000 + "]" * 100_000  # 200 KB: under the body limit, far over the depth limit


def cursor(raw: str) -> str:
    """A cursor as the store encodes one, around `raw` (its JSON)."""
    return base64.urlsafe_b64encode(raw.encode()).rstrip(b"=").decode()


def assert_bad_request(response: requests.Response, fragment: str = "") -> str:
    assert response.status_code == 400, (response.status_code, response.text[:500])
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert body["type"] == "BadRequest" and set(body) == {"type", "message"}
    assert fragment in body["message"], body["message"]
    return body["message"]


# the decoder


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (DEEP, "nested more than"),
        ('{"a": NaN}', "NaN is not a JSON number"),
        ("[Infinity]", "Infinity is not a JSON number"),
        ("[-Infinity]", "-Infinity is not a JSON number"),
        ('{"n": 1e400}', "too large"),
        ("9" * 5000, "too many digits"),
        ("{nope", "not valid JSON"),
        (b"\xff\xfe\xff", "not valid"),
        ('{"a": "\\udfff"}', "half of a surrogate pair"),
        ('{"\\ud800": 1}', "half of a surrogate pair"),
        ('[[{"deep": ["\\udc00"]}]]', "half of a surrogate pair"),
    ],
)
def test_the_decoder_refuses_what_json_does_not_allow(text: str | bytes, fragment: str) -> None:
    with pytest.raises(json_input.MalformedJson, match=fragment):
        json_input.loads(text)


def test_the_decoder_reads_standard_json_up_to_the_depth_limit() -> None:
    depth = defaults.JSON_MAX_DEPTH
    assert json_input.loads("[" * depth + "]" * depth) is not None
    with pytest.raises(json_input.MalformedJson):
        json_input.loads("[" * (depth + 1) + "]" * (depth + 1))
    # brackets inside strings do not nest
    assert json_input.loads(json.dumps({"s": "[" * 1000, "t": '\\"{'})) == {
        "s": "[" * 1000,
        "t": '\\"{',
    }
    assert json_input.loads(b'{"n": 1.5e300, "i": 12345678901234567890}') == {
        "n": 1.5e300,
        "i": 12345678901234567890,
    }
    # a whole surrogate pair is one character; an escaped backslash is not an escape
    assert json_input.loads('["\\ud83d\\ude00", "\\\\udfff"]') == ["\U0001f600", "\\udfff"]


# request bodies


def test_callback_with_deeply_nested_json_is_accepted_as_a_hint(
    service_stack: ServiceStack, stack_app: SandboxApp
) -> None:
    notebook = stack_app.create_notebook("deep callback")
    response = requests.post(
        service_stack.callback_url(notebook["id"]),
        data=DEEP,
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code in (202, 400), (response.status_code, response.text[:500])
    assert response.status_code != 202 or response.json() == {"accepted": True}


def test_relay_with_deeply_nested_json_is_400(service_stack: ServiceStack) -> None:
    response = requests.post(
        f"{service_stack.url}/hooks/losant",
        data=DEEP,
        headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {service_stack.env['NBRELAY_INGEST_TOKEN']}",
        },
        timeout=30,
    )
    assert_bad_request(response)


@pytest.mark.parametrize(
    "path", ["/api/notebooks/report/executions", "/api/pipelines/nightly/runs"]
)
@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (DEEP, "nested more than"),
        ('{"requestedBy": NaN}', "NaN"),
        ('{"requestedBy": Infinity}', "Infinity"),
        ('{"requestedBy": 1e999}', "too large"),
        ("{nope", "malformed"),
        ("[1, 2]", "must be a JSON object"),
        ('"text"', "must be a JSON object"),
        ("null", "must be a JSON object"),
        ('{"requestedBy": 7}', "requestedBy"),
        ('{"requestedBy": ""}', "requestedBy"),
        ('{"surprise": 1}', "unknown field"),
    ],
)
def test_api_bodies_that_are_not_what_the_endpoint_takes_are_400(
    service_stack: ServiceStack, path: str, body: str, fragment: str
) -> None:
    response = service_stack.post(path, data=body, headers={"Content-Type": "application/json"})
    assert_bad_request(response, fragment)


def test_api_bodies_of_another_type_are_415(service_stack: ServiceStack) -> None:
    response = service_stack.post(
        "/api/notebooks/report/executions", data="{}", headers={"Content-Type": "text/plain"}
    )
    assert response.status_code == 415 and response.json()["type"] == "UnsupportedMediaType"


@pytest.mark.parametrize(
    ("field", "fragment"),
    [
        ({"relativeTo": 10**30}, "outside the years"),
        ({"relativeTo": "9" * 5000}, "outside the years"),
        ({"relativeTo": 1.5}, "relativeTo must be"),
        ({"relativeTo": True}, "relativeTo must be"),
        ({"relativeTo": "soon"}, "ISO 8601"),
        ({"context": "[" * 5000}, "context"),
        ({"context": '{"a": NaN}'}, "context"),
        ({"context": [1]}, "JSON object"),
        ({"requestedBy": "\udfff"}, "half of a surrogate pair"),
    ],
)
def test_run_request_fields_are_checked_before_losant_is_asked(
    service_stack: ServiceStack, field: dict, fragment: str
) -> None:
    response = service_stack.post("/api/notebooks/no-such-notebook/executions", json=field)
    assert_bad_request(response, fragment)


# query parameters


@pytest.mark.parametrize(
    "raw", ['[NaN, "x"]', '[Infinity, "x"]', '[-Infinity, "x"]', '[1e400, "x"]',
            '["nan", "x"]', f'[{10**400}, "x"]', '[true, "x"]', '[1, 2]', '[1]', DEEP[:2000]],
)  # fmt: skip
def test_a_cursor_that_was_not_handed_out_is_400_not_503(
    service_stack: ServiceStack, raw: str
) -> None:
    response = service_stack.get("/api/executions", params={"cursor": cursor(raw)})
    assert_bad_request(response, "cursor")


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ({"limit": "NaN"}, "limit"),
        ({"limit": "Infinity"}, "limit"),
        ({"limit": "1e3"}, "limit"),
        ({"limit": "9" * 3000}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"since": "NaN"}, "since"),
        ({"since": "9" * 30}, "outside the years"),
        ({"until": "-" + "9" * 3000}, "outside the years"),
        ({"until": "0001-01-01T00:00:00+01:00"}, "outside the years"),
        ({"since": "2026-13-01"}, "ISO 8601"),
        ({"since": "١٢٣"}, "ISO 8601"),
        ({"status": "NaN"}, "status"),
        ({"notebook": "[]"}, "notebook"),
        ({"notebook": "٣" * 24}, "notebook"),
    ],
)
def test_bad_query_parameters_are_400(
    service_stack: ServiceStack, query: dict[str, str], fragment: str
) -> None:
    assert_bad_request(service_stack.get("/api/executions", params=query), fragment)


def test_the_limits_of_dates_are_accepted(service_stack: ServiceStack) -> None:
    response = service_stack.get(
        "/api/executions",
        params={"since": "-62135596800000", "until": "9999-12-31T23:59:59.999Z"},
    )
    assert response.status_code == 200, response.text


# the command line


def nbrelay(
    args: list[str], env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> int:
    """Run `nbrelay ARGS` in this process as its console entry point does; its exit status."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)  # no .env of anyone's
    with pytest.raises(SystemExit) as stopped:
        main(args)
    return cast(int, stopped.value.code)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["executions", "--since", "NaN"], "--since"),
        (["executions", "--until", "9" * 40], "outside the years"),
        (["executions", "--since", "2026-02-30"], "ISO 8601"),
        (["executions", "--limit", "NaN"], "--limit"),
        (["executions", "--limit", "1e400"], "--limit"),
        (["actions", "list", "--limit", "-5"], "--limit"),
        (["run", "report", "--timeout", "nan"], "--timeout"),
        (["run", "report", "--timeout", "inf"], "--timeout"),
        (["run", "report", "--relative-to", "1" * 30], "outside the years"),
        (["run", "report", "--context", "[" * 50_000], "nested more than"),
        (["run", "report", "--context", '{"a": NaN}'], "NaN"),
        (["run", "report", "--context", '{"a": 1e999}'], "too large"),
        (["pipelines", "start", "nightly", "--timeout", "nan"], "--timeout"),
        (["pipelines", "start", "nightly", "--timeout", "-1"], "--timeout"),
        (["pipelines", "start", "nightly", "--param", "day"], "NAME=VALUE"),
        (["show", "NaN"], "EXECUTION"),
        (["show", "٣" * 24], "EXECUTION"),
        (["sandbox", "--max-run-minutes", "nan"], "--max-run-minutes"),
    ],
)
def test_bad_command_line_values_are_one_line_and_exit_2(
    args: list[str],
    fragment: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    status = nbrelay(args, VALID, monkeypatch, tmp_path)
    stderr = capsys.readouterr().err
    assert status == 2, (args[:4], stderr[-2000:])
    assert stderr.startswith("nbrelay: error: ") and stderr.count("\n") == 1
    assert fragment in stderr, stderr[:500]


def test_a_deeply_nested_pipeline_parameter_is_text_not_a_crash(
    service_stack: ServiceStack,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`--param NAME=VALUE` reads VALUE as JSON when it is JSON; too deep, it is text."""
    args = ["pipelines", "start", "no-such-pipeline", "--param", "day=" + "[" * 50_000]
    status = nbrelay(args, service_stack.env, monkeypatch, tmp_path)
    stderr = capsys.readouterr().err
    assert status == 2, stderr[-2000:]
    assert stderr.count("\n") == 1 and "no-such-pipeline" in stderr


def test_an_id_with_a_trailing_newline_is_not_an_id():
    execution = "5c7d3f9cd32c87a49f04c260"
    hint = parse_hint(json.dumps({"id": f"{execution}\n", "notebookId": f"{execution}\n"}).encode())
    assert hint.execution_id is None and hint.notebook_id is None
    assert parse_hint(json.dumps({"id": execution}).encode()).execution_id == execution
