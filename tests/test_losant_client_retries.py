"""The Losant client's transport policy: what it retries, how long it waits, the timeouts it keeps,
and that a non-idempotent request (execute above all) is sent exactly once whatever happens."""

from __future__ import annotations

import time

import pytest

from service.losant import LosantClient, OutcomeUnknown, RateLimited, Unavailable
from service.losant.transport import RetryPolicy
from service.runtime.processes import free_port
from tests.support.http_server import Reply
from tests.support.losant import APP, EXECUTION_ID, NOTEBOOK, NOTEBOOK_ID, TOKEN, make_client

BUSY = {"type": "ServiceUnavailable", "message": "try again"}
QUEUED = {"success": True, "executionId": EXECUTION_ID}


def test_503_503_200_succeeds_after_exactly_three_calls(http_server):
    http_server.reply(Reply(503, BUSY), Reply(503, BUSY), Reply(200, NOTEBOOK))

    notebook = make_client(http_server, max_retries=4).get_notebook(APP, NOTEBOOK_ID)

    assert notebook.id == NOTEBOOK_ID
    assert len(http_server.requests) == 3


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_transient_statuses_are_retried(http_server, status):
    http_server.reply(Reply(status, BUSY), Reply(200, []))

    assert make_client(http_server).logs(APP, NOTEBOOK_ID) == []
    assert len(http_server.requests) == 2


def test_500_is_not_retried(http_server):
    http_server.reply(Reply(500, {"type": "Unexpected", "message": "bug"}), Reply(200, []))

    with pytest.raises(Unavailable) as caught:
        make_client(http_server).logs(APP, NOTEBOOK_ID)

    assert caught.value.status == 500
    assert len(http_server.requests) == 1


def test_retries_exhausted_raise_unavailable_with_the_status(http_server):
    http_server.default = Reply(503, BUSY)

    with pytest.raises(Unavailable) as caught:
        make_client(http_server, max_retries=3).get_notebook(APP, NOTEBOOK_ID)

    assert caught.value.status == 503
    assert caught.value.type == "ServiceUnavailable"
    assert len(http_server.requests) == 4


def test_rate_limit_exhausted_raises_rate_limited(http_server):
    http_server.default = Reply(429, {"type": "TooManyRequests", "message": "slow"})

    with pytest.raises(RateLimited):
        make_client(http_server, max_retries=1).logs(APP, NOTEBOOK_ID)

    assert len(http_server.requests) == 2


def test_retry_after_seconds_is_honoured(http_server):
    http_server.reply(Reply(503, BUSY, {"Retry-After": "1"}), Reply(200, []))
    client = make_client(http_server, backoff_base=0.001, backoff_max=5)

    started = time.monotonic()
    client.logs(APP, NOTEBOOK_ID)
    elapsed = time.monotonic() - started

    assert len(http_server.requests) == 2
    assert 0.95 <= elapsed < 3


def test_retry_after_http_date_is_honoured(http_server):
    # HTTP dates have whole seconds: a date 2 s ahead means a wait of more than 1 s.
    when = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 2))
    http_server.reply(Reply(429, BUSY, {"Retry-After": when}), Reply(200, []))
    client = make_client(http_server, backoff_base=0.001, backoff_max=5)

    started = time.monotonic()
    client.logs(APP, NOTEBOOK_ID)
    elapsed = time.monotonic() - started

    assert len(http_server.requests) == 2
    assert 1.0 <= elapsed < 3.5


def test_retry_after_is_capped_by_backoff_max(http_server):
    http_server.reply(Reply(503, BUSY, {"Retry-After": "120"}), Reply(200, []))
    client = make_client(http_server, backoff_max=0.2)

    started = time.monotonic()
    client.logs(APP, NOTEBOOK_ID)

    assert time.monotonic() - started < 2
    assert len(http_server.requests) == 2


def test_full_jitter_stays_within_the_exponential_bound():
    policy = RetryPolicy(max_retries=5, backoff_base=0.5, backoff_max=3.0, deadline=60)

    for retry, bound in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 3.0), (6, 3.0)]:
        delays = [policy.delay(retry) for _ in range(300)]
        assert all(0 <= d <= bound for d in delays)
        assert max(delays) > bound * 0.8  # spread over the whole range, not a fixed wait
        assert min(delays) < bound * 0.2
    assert policy.delay(0, retry_after=10) == 3.0
    assert policy.delay(4, retry_after=0) == 0


def test_a_server_that_never_answers_times_out_within_the_bound(http_server):
    http_server.reply(Reply(200, NOTEBOOK, delay=5))
    client = make_client(http_server, read_timeout=0.5, max_retries=0)

    started = time.monotonic()
    with pytest.raises(Unavailable, match=r"no answer within 0\.5 s") as caught:
        client.get_notebook(APP, NOTEBOOK_ID)

    assert time.monotonic() - started < 2
    assert caught.value.status is None
    assert len(http_server.requests) == 1


def test_read_timeouts_of_safe_requests_are_retried(http_server):
    http_server.reply(Reply(200, [], delay=3), Reply(200, []))
    client = make_client(http_server, read_timeout=0.3, max_retries=2)

    started = time.monotonic()
    assert client.logs(APP, NOTEBOOK_ID) == []

    assert time.monotonic() - started < 2
    assert len(http_server.requests) == 2


def test_dropped_connections_of_safe_requests_are_retried(http_server):
    http_server.reply(Reply(disconnect=True), Reply(200, {"success": True}))

    make_client(http_server).cancel_execution(APP, NOTEBOOK_ID, EXECUTION_ID)

    assert [r.path.rsplit("/", 1)[-1] for r in http_server.requests] == ["cancelExecution"] * 2


def test_answers_cut_off_midway_are_retried_for_safe_requests(http_server):
    http_server.reply(Reply(200, NOTEBOOK, truncate=10), Reply(200, NOTEBOOK))

    assert make_client(http_server).get_notebook(APP, NOTEBOOK_ID).id == NOTEBOOK_ID
    assert len(http_server.requests) == 2


def test_retries_stop_at_the_deadline(http_server):
    http_server.default = Reply(503, BUSY, {"Retry-After": "0.1"})
    client = make_client(http_server, max_retries=50, backoff_max=1, retry_deadline=0.35)

    started = time.monotonic()
    with pytest.raises(Unavailable):
        client.logs(APP, NOTEBOOK_ID)

    assert time.monotonic() - started < 1
    assert 2 <= len(http_server.requests) <= 5


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.patch_notebook(APP, NOTEBOOK_ID, {"description": "same body"}),
        lambda c: c.delete_notebook(APP, NOTEBOOK_ID),
        lambda c: c.cancel_execution(APP, NOTEBOOK_ID, EXECUTION_ID),
        lambda c: c.notebook_minute_counts(APP, NOTEBOOK_ID),
        lambda c: c.list_notebooks(APP),
    ],
    ids=["patch", "delete", "cancelExecution", "notebookMinuteCounts", "list"],
)
def test_repeatable_routes_are_retried_with_the_same_request(http_server, call):
    http_server.reply(Reply(503, BUSY), Reply(200, NOTEBOOK | {"success": True, "items": []}))

    call(make_client(http_server))

    first, second = http_server.requests
    assert (first.method, first.path, first.query, first.body) == (
        second.method,
        second.path,
        second.query,
        second.body,
    )


def test_unreachable_server_is_unavailable_after_retries(caplog):
    client = LosantClient(f"http://127.0.0.1:{free_port()}", TOKEN, max_retries=2,
                          backoff_base=0.01, backoff_max=0.02)  # fmt: skip

    with pytest.raises(Unavailable, match="could not connect .*nothing was sent"):
        client.get_notebook(APP, NOTEBOOK_ID)

    assert caplog.text.count("retry ") == 2


# Non-idempotent requests: sent exactly once, and an unknown fate says so.

NON_IDEMPOTENT = {
    "execute": lambda c: c.execute(APP, NOTEBOOK_ID, template_context={"k": 1}),
    "create": lambda c: c.create_notebook(APP, {"name": "n"}),
    "upload": lambda c: c.upload(APP, NOTEBOOK_ID, "n.ipynb", b"{}"),
    "requestInputDataExport": lambda c: c.request_input_data_export(APP, NOTEBOOK_ID),
}
FAILURES = {  # what the server does -> the status the error carries
    "500": (Reply(500, {"type": "Unexpected", "message": "bug"}), 500),
    "502-html": (Reply(502, "<html><h1>502 Bad Gateway</h1></html>"), 502),
    "503": (Reply(503, BUSY, {"Retry-After": "0"}), 503),
    "504": (Reply(504, b""), 504),
    "timeout": (Reply(200, QUEUED, delay=2), None),
    "connection-closed": (Reply(disconnect=True), None),
    "answer-cut-off": (Reply(200, QUEUED, truncate=5), None),
}


@pytest.mark.parametrize("failure", FAILURES.values(), ids=FAILURES.keys())
@pytest.mark.parametrize("route", NON_IDEMPOTENT.values(), ids=NON_IDEMPOTENT.keys())
def test_non_idempotent_requests_are_sent_once_and_their_outcome_is_unknown(
    http_server, route, failure
):
    reply, status = failure
    http_server.reply(reply)
    http_server.default = Reply(200, QUEUED)
    client = make_client(http_server, read_timeout=0.3, max_retries=4)

    started = time.monotonic()
    with pytest.raises(OutcomeUnknown) as caught:
        route(client)

    assert time.monotonic() - started < 1.5
    assert "may or may not have been applied" in str(caught.value)
    assert caught.value.status == status
    assert len(http_server.requests) == 1


def test_execute_against_an_unreachable_server_is_unavailable_and_not_retried(caplog):
    client = LosantClient(f"http://127.0.0.1:{free_port()}", TOKEN, max_retries=3,
                          backoff_base=0.01, backoff_max=0.02)  # fmt: skip

    with pytest.raises(Unavailable, match="nothing was sent"):
        client.execute(APP, NOTEBOOK_ID)

    assert "retry" not in caplog.text


def test_execute_succeeds_on_a_healthy_server_after_an_earlier_failure(http_server):
    # The client stays usable: a failed execute does not poison the connection pool.
    http_server.reply(Reply(disconnect=True), Reply(200, QUEUED))
    client = make_client(http_server)

    with pytest.raises(OutcomeUnknown):
        client.execute(APP, NOTEBOOK_ID)
    assert client.execute(APP, NOTEBOOK_ID) == EXECUTION_ID
    assert len(http_server.requests) == 2
