"""How the Losant client reports failures: one class per kind, Losant's type and message, short
clean messages for non-JSON answers, and never the API token."""

from __future__ import annotations

import logging
import pickle
from datetime import UTC, datetime

import pytest

from service.errors import NbrelayError
from service.losant import (
    BadRequest,
    InvalidResponse,
    LosantClient,
    LosantError,
    NotFound,
    OutcomeUnknown,
    RateLimited,
    Unauthorized,
    Unavailable,
)
from service.losant.errors import parse_retry_after
from service.runtime.processes import free_port
from tests.support.http_server import Reply
from tests.support.losant import APP, NOTEBOOK_ID, TOKEN, make_client

HTML_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n" + "<!-- padding -->\r\n" * 20
)


@pytest.mark.parametrize(
    ("status", "body", "error_class", "losant_type", "message"),
    [
        (400, {"type": "Validation", "message": "name is required"}, BadRequest, "Validation",
         "name is required"),
        (401, {"type": "Unauthorized", "message": "Invalid access token"}, Unauthorized,
         "Unauthorized", "Invalid access token"),
        (403, {"type": "Unauthorized", "message": "Missing scope notebook.get"}, Unauthorized,
         "Unauthorized", "Missing scope notebook.get"),
        (404, {"type": "NotFound", "message": "Notebook was not found"}, NotFound, "NotFound",
         "Notebook was not found"),
        (405, {"type": "MethodNotAllowed", "message": "GET is not allowed"}, BadRequest,
         "MethodNotAllowed", "GET is not allowed"),
        (429, {"type": "TooManyRequests", "message": "Slow down"}, RateLimited,
         "TooManyRequests", "Slow down"),
        (500, {"type": "Unexpected", "message": "Something broke"}, Unavailable, "Unexpected",
         "Something broke"),
        (503, {"type": "ServiceUnavailable", "message": "Down for maintenance"}, Unavailable,
         "ServiceUnavailable", "Down for maintenance"),
    ],
)  # fmt: skip
def test_losant_error_bodies_map_to_classes(
    http_server, status, body, error_class, losant_type, message
):
    http_server.reply(Reply(status, body))
    client = make_client(http_server, max_retries=0)

    with pytest.raises(error_class) as caught:
        client.get_notebook(APP, NOTEBOOK_ID)

    error = caught.value
    assert isinstance(error, LosantError) and isinstance(error, NbrelayError)
    assert (error.status, error.type, error.message) == (status, losant_type, message)
    assert str(error) == (
        f"Losant GET /applications/{APP}/notebooks/{NOTEBOOK_ID}: {status} {losant_type}: {message}"
    )


@pytest.mark.parametrize(
    ("status", "body", "error_class", "phrase"),
    [
        (502, HTML_502, Unavailable, "Bad Gateway"),
        (504, b"", Unavailable, "Gateway Timeout"),
        (404, "Not Found", NotFound, "Not Found"),
        (400, "<h1>Bad</h1>", BadRequest, "Bad Request"),
        (401, b"\x00\xff", Unauthorized, "Unauthorized"),
        (429, "<p>slow</p>", RateLimited, "Too Many Requests"),
        (599, "??", Unavailable, "HTTP 599"),
    ],
)
def test_non_json_bodies_map_to_classes_with_a_short_clean_message(
    http_server, status, body, error_class, phrase
):
    http_server.reply(Reply(status, body, {"Content-Type": "text/html"}))
    client = make_client(http_server, max_retries=0)

    with pytest.raises(error_class) as caught:
        client.logs(APP, NOTEBOOK_ID)

    error = caught.value
    assert (error.status, error.type, error.message) == (status, None, phrase)
    assert (
        str(error)
        == f"Losant GET /applications/{APP}/notebooks/{NOTEBOOK_ID}/logs: {status}: {phrase}"
    )


def test_rate_limited_carries_retry_after(http_server):
    http_server.reply(Reply(429, {"type": "TooManyRequests", "message": "1 per 15 min"},
                            {"Retry-After": "900"}))  # fmt: skip
    client = make_client(http_server)

    with pytest.raises(RateLimited) as caught:
        client.request_input_data_export(APP, NOTEBOOK_ID)

    assert caught.value.retry_after == 900
    assert len(http_server.requests) == 1  # not repeatable: never retried, even on 429


@pytest.mark.parametrize(
    ("status", "error_class"),
    [(400, BadRequest), (401, Unauthorized), (403, Unauthorized), (404, NotFound),
     (429, RateLimited)],
)  # fmt: skip
def test_execute_rejections_are_precise(http_server, status, error_class):
    http_server.reply(Reply(status, {"type": "X", "message": "rejected"}))
    client = make_client(http_server)

    with pytest.raises(error_class):
        client.execute(APP, NOTEBOOK_ID)

    assert len(http_server.requests) == 1


def test_errors_survive_pickling(http_server):
    http_server.reply(Reply(429, {"type": "TooManyRequests", "message": "later"},
                            {"Retry-After": "7"}))  # fmt: skip
    with pytest.raises(RateLimited) as caught:
        make_client(http_server, max_retries=0).get_notebook(APP, NOTEBOOK_ID)

    copy = pickle.loads(pickle.dumps(caught.value))

    assert type(copy) is RateLimited
    assert (copy.status, copy.type, copy.message, copy.request, copy.retry_after) == (
        429, "TooManyRequests", "later", caught.value.request, 7
    )  # fmt: skip
    assert str(copy) == str(caught.value)


def test_success_with_a_wrong_body_is_invalid_response(http_server):
    http_server.reply(Reply(200, "<html>maintenance</html>", {"Content-Type": "text/html"}),
                      Reply(200, {"name": "no id"}), Reply(200, {"not": "a list"}))  # fmt: skip
    client = make_client(http_server)

    with pytest.raises(InvalidResponse, match="not JSON"):
        client.get_notebook(APP, NOTEBOOK_ID)
    with pytest.raises(InvalidResponse, match="id: Field required"):
        client.get_notebook(APP, NOTEBOOK_ID)
    with pytest.raises(InvalidResponse, match="list of executions"):
        client.logs(APP, NOTEBOOK_ID)


def test_execute_answer_without_execution_id_is_outcome_unknown(http_server):
    http_server.reply(Reply(200, {"success": True}))

    with pytest.raises(OutcomeUnknown, match="may or may not have been applied"):
        make_client(http_server).execute(APP, NOTEBOOK_ID)


def test_token_never_appears_in_errors_reprs_or_logs(http_server, caplog):
    caplog.set_level(logging.DEBUG)
    client = make_client(http_server)
    impatient = make_client(http_server, read_timeout=0.2)
    unreachable = LosantClient(f"http://127.0.0.1:{free_port()}", TOKEN, max_retries=0)
    echo = {"type": f"Bearer {TOKEN}", "message": f"bad header Authorization: Bearer {TOKEN}"}
    html = f"<html><pre>Authorization: Bearer {TOKEN}</pre></html>"
    cases = [
        ([Reply(401, echo)], lambda: client.get_notebook(APP, NOTEBOOK_ID)),
        ([Reply(400, echo)], lambda: client.create_notebook(APP, {"name": TOKEN})),
        ([Reply(503, echo)] * 3, lambda: client.patch_notebook(APP, NOTEBOOK_ID, {})),
        ([Reply(500, echo)], lambda: client.execute(APP, NOTEBOOK_ID)),
        ([Reply(502, html)], lambda: client.upload(APP, NOTEBOOK_ID, "x.ipynb", b"{}")),
        ([Reply(200, {"unexpected": TOKEN})], lambda: client.execute(APP, NOTEBOOK_ID)),
        (
            [Reply(200, {"id": TOKEN, "name": [TOKEN]})],
            lambda: client.get_notebook(APP, NOTEBOOK_ID),
        ),
        ([Reply(200, {}, delay=1)], lambda: impatient.execute(APP, NOTEBOOK_ID)),
        ([Reply(200, {}, disconnect=True)], lambda: client.upload(APP, NOTEBOOK_ID, TOKEN, b"")),
        ([], lambda: unreachable.get_notebook(APP, NOTEBOOK_ID)),
    ]
    errors = []
    for replies, call in cases:
        http_server.reply(*replies)
        with pytest.raises(LosantError) as caught:
            call()
        errors.append(caught.value)

    assert [type(e) for e in errors] == [
        Unauthorized, BadRequest, Unavailable, OutcomeUnknown, OutcomeUnknown, OutcomeUnknown,
        InvalidResponse, OutcomeUnknown, OutcomeUnknown, Unavailable,
    ]  # fmt: skip
    for error in errors:
        for text in (str(error), repr(error), repr(vars(error))):
            assert TOKEN not in text
    assert "Bearer [redacted]" in str(errors[0])
    for leaky in (client, unreachable):
        assert TOKEN not in repr(leaky)
        assert TOKEN not in repr(leaky._session.auth)
        assert TOKEN not in repr(leaky._session.headers)
    assert "retry 2 of 2" in caplog.text  # the log was really written ...
    assert TOKEN not in caplog.text  # ... without the token


def test_parse_retry_after():
    now = datetime(2024, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("120", now) == 120
    assert parse_retry_after(" 0 ", now) == 0
    assert parse_retry_after("Mon, 01 Jan 2024 12:00:30 GMT", now) == 30
    assert parse_retry_after("Mon, 01 Jan 2024 11:00:00 GMT", now) == 0  # in the past
    assert parse_retry_after("-5", now) == 0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after("", now) is None
    assert parse_retry_after(None, now) is None
