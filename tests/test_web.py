"""The web app built by its factory, against the test's private Redis (and, for starting runs,
the sandbox): error shapes, ingress, the API and the dashboard."""

import json
import re
import time

import pytest
from rq import Queue

from service import defaults, keys, standard_webhooks
from service.config import Settings
from service.events import tokens
from service.events.records import STATUSES
from service.queues import SYNC_QUEUE
from service.runtime.processes import free_port
from service.web import create_app
from service.web.openapi import document
from service.web.resources import EXTENSION
from tests.support.dashboard import sign_in
from tests.support.web import API_TOKEN, APP, NB, OLD_SECRET, SECRET, web_settings

INGEST = "ingest-token-0123456789"
EXECUTION = "5c7d3f9cd32c87a49f04c260"


def make_settings(redis_url: str, **extra: str) -> Settings:
    """The web's settings with a rotated-out secret still accepted and an ingest token."""
    secrets = {"NBRELAY_SECRET": f"{SECRET},{OLD_SECRET}", "NBRELAY_INGEST_TOKEN": INGEST}
    return web_settings(redis_url, **{**secrets, **extra})


@pytest.fixture
def app(redis, redis_server):
    return create_app(make_settings(redis_server.url))


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def api(client):
    class Api:
        headers = {"Authorization": f"Bearer {API_TOKEN}"}

        def get(self, path, **kwargs):
            return client.get(path, headers=self.headers, **kwargs)

        def post(self, path, **kwargs):
            return client.post(
                path, headers={**self.headers, **kwargs.pop("headers", {})}, **kwargs
            )

    return Api()


def queued_jobs(redis) -> list[str]:
    return Queue(SYNC_QUEUE, connection=redis).get_job_ids()


def assert_error(response, status: int, type_: str | None = None) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"type", "message"} and body["message"]
    if type_:
        assert body["type"] == type_
    return body


# error shapes


def test_flask_own_errors_are_json(client):
    assert_error(client.get("/no/such/page"), 404, "NotFound")
    response = client.get("/callbacks/whatever")
    assert_error(response, 405, "MethodNotAllowed")
    assert "POST" in response.headers["Allow"]
    assert_error(client.delete("/api/executions"), 405)


def test_api_requires_the_bearer_token(client):
    assert_error(client.get("/api/executions"), 401, "Unauthorized")
    response = client.get("/api/executions", headers={"Authorization": "Bearer wrong"})
    assert_error(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert_error(client.get("/api/openapi.json", headers={"Authorization": API_TOKEN}), 401)


def test_api_rejects_malformed_queries(api):
    assert_error(api.get("/api/executions?status=done"), 400, "BadRequest")
    assert_error(api.get("/api/executions?notebook=report"), 400)
    assert_error(api.get("/api/executions?since=yesterday"), 400)
    assert_error(api.get("/api/executions?limit=0"), 400)
    assert_error(api.get("/api/executions?cursor=!!"), 400)
    assert_error(api.get(f"/api/executions/{EXECUTION}"), 404)


def test_start_execution_validates_its_body(api):
    path = "/api/notebooks/report/executions"
    assert_error(api.post(path, data="x=1", content_type="text/plain"), 415, "UnsupportedMediaType")
    assert_error(api.post(path, data="{nope", content_type="application/json"), 400)
    assert_error(api.post(path, json=[1]), 400)
    assert_error(api.post(path, json={"unknown": 1}), 400)
    assert_error(api.post(path, json={"context": "x"}), 400)
    assert_error(api.post(path, json={"context": {"nbrelay": {}}}), 400)
    assert_error(api.post(path, json={"relativeTo": "soon"}), 400)


def test_redis_down_answers_503_and_readyz_says_so(redis):
    app = create_app(make_settings(f"redis://127.0.0.1:{free_port()}/0"))
    client = app.test_client()
    assert client.get("/healthz").status_code == 200
    assert_error(client.get("/readyz"), 503, "Unavailable")
    token = tokens.sign(SECRET, APP, NB)
    assert_error(client.post(f"/callbacks/{token}", data=b"{}"), 503, "Unavailable")
    assert_error(
        client.get("/api/executions", headers={"Authorization": f"Bearer {API_TOKEN}"}), 503
    )


def test_readyz_with_redis(client):
    assert client.get("/readyz").get_json() == {"status": "ready"}


# callbacks


def test_a_valid_callback_is_recorded_marked_and_enqueued(client, redis):
    token = tokens.sign(SECRET, APP, NB, run="run-9", step="report")
    body = {"success": True, "execution": {"id": EXECUTION, "status": "completed"}}
    response = client.post(f"/callbacks/{token}", json=body)
    assert response.status_code == 202 and response.get_json() == {"accepted": True}
    ((entry_id, event),) = redis.xrange(keys.events())
    event = {k.decode(): v.decode() for k, v in event.items()}
    assert (event["source"], event["application"], event["notebook"]) == ("callback", APP, NB)
    assert (event["run"], event["step"]) == ("run-9", "report")
    assert (event["execution"], event["claimedStatus"]) == (EXECUTION, "completed")
    assert json.loads(event["body"]) == body
    assert token not in json.dumps(event)
    assert redis.zscore(keys.dirty_notebooks(), keys.notebook_ref(APP, NB)) is not None
    assert len(queued_jobs(redis)) == 1


def test_callbacks_for_one_notebook_share_one_queued_sync(client, redis):
    token = tokens.sign(SECRET, APP, NB)
    for _ in range(20):
        assert client.post(f"/callbacks/{token}", json={}).status_code == 202
    assert redis.xlen(keys.events()) == 20
    assert len(queued_jobs(redis)) == 1


def test_rotated_out_secret_still_verifies(client, redis):
    token = tokens.sign(OLD_SECRET, APP, NB)
    assert client.post(f"/callbacks/{token}", data=b"").status_code == 202


def tampered(token: str) -> str:
    """The token with one character of its signature really changed (a fixed suffix such as
    "AA" would sometimes equal the original one and leave the token valid)."""
    position = len(token) - 5
    replacement = "B" if token[position] == "A" else "A"
    return token[:position] + replacement + token[position + 1 :]


@pytest.mark.parametrize(
    "token",
    [
        tokens.sign("some-other-secret-0123", APP, NB),
        tokens.sign(SECRET, APP, NB, ttl=10, now=time.time() - 60),
        tampered(tokens.sign(SECRET, APP, NB)),
        "not-a-token",
    ],
    ids=["forged", "expired", "tampered", "garbage"],
)
def test_a_bad_token_is_404_and_nothing_is_recorded(client, redis, token):
    assert_error(client.post(f"/callbacks/{token}", json={"status": "completed"}), 404, "NotFound")
    assert list(redis.scan_iter("nbrelay:*")) == []
    assert queued_jobs(redis) == []


def test_any_body_is_a_hint(client, redis):
    token = tokens.sign(SECRET, APP, NB)
    response = client.post(
        f"/callbacks/{token}", data=b"\x00\xffnot json", content_type="text/plain"
    )
    assert response.status_code == 202
    ((_, event),) = redis.xrange(keys.events())
    assert event[b"contentType"] == b"text/plain"
    assert len(queued_jobs(redis)) == 1


def test_an_oversized_body_is_413_and_not_recorded(client, redis):
    token = tokens.sign(SECRET, APP, NB)
    response = client.post(f"/callbacks/{token}", data=b"x" * (300 * 1024))
    assert_error(response, 413, "PayloadTooLarge")
    assert redis.xlen(keys.events()) == 0
    assert queued_jobs(redis) == []


# the workflow relay


def trigger_payload(execution_id: str = EXECUTION) -> dict:
    return {
        "time": "2026-01-01T00:00:00Z",
        "applicationId": APP,
        "triggerType": "notebook",
        "data": {
            "success": False,
            "notebook": {"id": NB, "applicationId": APP, "name": "report"},
            "execution": {
                "id": execution_id,
                "notebookId": NB,
                "applicationId": APP,
                "status": "errored",
            },
        },
    }


def test_relay_with_bearer_token(client, redis):
    response = client.post(
        "/hooks/losant", json=trigger_payload(), headers={"Authorization": f"Bearer {INGEST}"}
    )
    assert response.status_code == 202
    ((_, event),) = redis.xrange(keys.events())
    assert (event[b"source"], event[b"notebook"], event[b"execution"]) == (
        b"hook",
        NB.encode(),
        EXECUTION.encode(),
    )
    assert len(queued_jobs(redis)) == 1


def test_relay_with_a_bare_execution_and_a_standard_webhooks_signature(client, redis):
    body = json.dumps({"id": EXECUTION, "notebookId": NB, "applicationId": APP}).encode()
    headers = standard_webhooks.headers(INGEST, "msg_1", body)
    response = client.post(
        "/hooks/losant", data=body, headers=headers, content_type="application/json"
    )
    assert response.status_code == 202 and response.get_json() == {"accepted": True}
    again = client.post(
        "/hooks/losant", data=body, headers=headers, content_type="application/json"
    )
    assert again.status_code == 202 and again.get_json()["duplicate"] is True
    assert redis.xlen(keys.events()) == 1


def test_relay_refuses_unauthenticated_requests(client, redis):
    body = json.dumps(trigger_payload()).encode()
    stale = standard_webhooks.headers(INGEST, "msg_2", body, timestamp=int(time.time()) - 3600)
    wrong = standard_webhooks.headers("whsec_" + "A" * 32, "msg_3", body)
    for headers in ({}, {"Authorization": "Bearer nope"}, stale, wrong):
        response = client.post(
            "/hooks/losant", data=body, headers=headers, content_type="application/json"
        )
        assert_error(response, 401)
    assert list(redis.scan_iter("nbrelay:*")) == []


def test_relay_wants_json_that_names_a_notebook(client, redis):
    auth = {"Authorization": f"Bearer {INGEST}"}
    assert_error(
        client.post("/hooks/losant", data="hi", headers=auth, content_type="text/plain"), 415
    )
    assert_error(client.post("/hooks/losant", json=[1, 2], headers=auth), 400)
    assert_error(client.post("/hooks/losant", json={"data": {"success": True}}, headers=auth), 400)
    assert list(redis.scan_iter("nbrelay:*")) == []


# API and dashboard over stored executions


@pytest.fixture
def stored(app):
    components = app.extensions[EXTENSION]
    fence = components.syncs.begin(APP, NB, "job", 0).fence
    context = json.dumps({"nbrelay": {"run": "r", "step": "s"}})
    records = [
        {"id": f"{n:024x}", "notebookId": NB, "applicationId": APP, "status": status,
         "runQueuedAt": f"2026-01-0{n}T10:00:00.000Z", "templateContext": context}
        for n, status in ((1, "completed"), (2, "errored"), (3, "inProgress"))
    ]  # fmt: skip
    components.store.upsert(APP, NB, records, fence=fence)
    return records


def test_api_lists_filters_and_pages(api, stored):
    page = api.get("/api/executions?limit=2").get_json()
    assert [i["id"] for i in page["items"]] == [stored[2]["id"], stored[1]["id"]]
    rest = api.get(f"/api/executions?limit=2&cursor={page['nextCursor']}").get_json()
    assert [i["id"] for i in rest["items"]] == [stored[0]["id"]] and rest["nextCursor"] is None
    failed = api.get(f"/api/executions?notebook={NB}&status=errored,completed").get_json()
    assert [i["status"] for i in failed["items"]] == ["errored", "completed"]
    window = api.get("/api/executions?since=2026-01-02T00:00:00Z&until=2026-01-02T23:00:00Z")
    assert [i["id"] for i in window.get_json()["items"]] == [stored[1]["id"]]
    one = api.get(f"/api/executions/{stored[1]['id']}").get_json()
    assert one["losant"] == stored[1]
    assert one["nbrelay"]["pipeline"] == {"run": "r", "step": "s", "attempt": 1}


def test_dashboard_shows_executions_and_no_secrets(client, stored):
    assert sign_in(client, API_TOKEN).status_code == 303
    token = tokens.sign(SECRET, APP, NB)
    body = {"execution": {"id": stored[0]["id"], "status": "completed"}}
    assert client.post(f"/callbacks/{token}", json=body).status_code == 202
    page = client.get("/").get_data(as_text=True)
    assert "Recent callbacks" in page and "callback" in page
    assert stored[0]["id"] in page and "errored" in page
    detail = client.get(f"/executions/{stored[1]['id']}").get_data(as_text=True)
    assert "2026-01-02T10:00:00.000Z" in detail
    for secret in (SECRET, OLD_SECRET, API_TOKEN, INGEST, "losant-token", token):
        assert secret not in page + detail
    assert client.get(f"/executions/{EXECUTION}").status_code == 404


def test_openapi_describes_every_route(app, api):
    served = api.get("/api/openapi.json").get_json()
    assert served == json.loads(json.dumps(document()))
    documented = {
        (re.sub(r"{[^}]+}", "{}", path), method.upper())
        for path, ops in served["paths"].items()
        for method in ops
    }
    for rule in app.url_map.iter_rules():
        if rule.endpoint in ("static", "dashboard.static"):
            continue
        path = re.sub(r"<[^>]+>", "{}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (path, method) in documented, (path, method)
    statuses = served["components"]["schemas"]["Execution"]["properties"]["status"]["enum"]
    assert set(STATUSES) <= set(statuses)


# Losant's answers to starting a run, mapped to ours


def test_losant_errors_when_starting_a_run(redis, redis_server, http_server, monkeypatch):
    from tests.support.http_server import Reply
    from tests.support.losant import NOTEBOOK, NOTEBOOK_ID

    monkeypatch.setattr(defaults, "NOTEBOOK_LOOKUP_TTL", 0.0)  # every start looks it up

    app = create_app(make_settings(redis_server.url, LOSANT_API_URL=http_server.url))
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    path = f"/api/notebooks/{NOTEBOOK_ID}/executions"
    client = app.test_client()

    http_server.reply(
        Reply(200, NOTEBOOK),
        Reply(429, {"type": "RateLimited", "message": "slow down"}, {"Retry-After": "30"}),
    )
    limited = client.post(path, json={}, headers=headers)
    assert_error(limited, 429, "RateLimited")
    assert limited.headers["Retry-After"] == "30"

    http_server.reply(Reply(200, NOTEBOOK), Reply(500, {"type": "Error", "message": "oops"}))
    unknown = assert_error(client.post(path, json={}, headers=headers), 503, "Unavailable")
    assert "may or may not" in unknown["message"]

    empty = {"items": [], "count": 0, "totalCount": 0, "perPage": 100, "page": 0}
    http_server.reply(
        Reply(404, {"type": "NotFound", "message": "Notebook was not found"}), Reply(200, empty)
    )
    assert_error(client.post(path, json={}, headers=headers), 404, "NotFound")
    assert list(redis.scan_iter("nbrelay:execution:*")) == []

    http_server.reply(Reply(200, NOTEBOOK), Reply(200, {"success": True, "executionId": EXECUTION}))
    started = client.post(
        path, json={"context": {"day": "mon"}, "requestedBy": "ana"}, headers=headers
    )
    assert started.status_code == 201
    sent = http_server.requests[-1].json()
    assert json.loads(sent["templateContext"]) == {"day": "mon"}
    assert sent["callbackUrl"].startswith("https://relay.example.com/callbacks/")
    token = sent["callbackUrl"].rsplit("/", 1)[1]
    assert tokens.verify(token, [SECRET]).notebook_id == NOTEBOOK_ID
    stored = api_get(client, f"/api/executions/{EXECUTION}")
    assert stored["nbrelay"]["requestedBy"] == "api:ana"
    assert stored["status"] is None and stored["losant"] is None


def api_get(client, path: str) -> dict:
    return client.get(path, headers={"Authorization": f"Bearer {API_TOKEN}"}).get_json()


# the workflow relay refuses before it records


def test_relay_refuses_other_applications_and_records_nothing(client, redis):
    """An authenticated sender may not make nbrelay sync another application with nbrelay's
    own Losant token."""
    other = "575ec8687ae143cd83dc4a98"
    payload = trigger_payload()
    payload["data"]["notebook"]["applicationId"] = other
    payload["data"]["execution"]["applicationId"] = other
    response = client.post(
        "/hooks/losant", json=payload, headers={"Authorization": f"Bearer {INGEST}"}
    )
    assert APP in assert_error(response, 403, "Forbidden")["message"]
    assert list(redis.scan_iter("nbrelay:*")) == []
    assert queued_jobs(redis) == []


@pytest.mark.parametrize(
    "stamp",
    ["+{now}", " {now}", "{now} ", "{now}.0", "{now}e0", "-{now}", "١٧٠٠٠٠٠٠٠٠", "9" * 40],
    ids=["plus", "space-before", "space-after", "fraction", "exponent", "minus", "arabic-digits",
         "overflow"],
)  # fmt: skip
def test_relay_refuses_webhook_timestamps_that_are_not_plain_digits(client, redis, stamp):
    now = int(time.time())
    stamp = stamp.format(now=now)
    body = json.dumps(trigger_payload()).encode()
    # signed over the number the loose parse would make of it: only the format is wrong
    try:
        number = int(stamp)
    except ValueError:
        number = now
    headers = {
        "webhook-id": "msg_ts",
        "webhook-timestamp": stamp,
        "webhook-signature": standard_webhooks.signature(INGEST, "msg_ts", number, body),
    }
    response = client.post(
        "/hooks/losant", data=body, headers=headers, content_type="application/json"
    )
    assert_error(response, 401, "Unauthorized")
    assert list(redis.scan_iter("nbrelay:*")) == []


def test_a_relay_request_that_failed_is_accepted_when_sent_again(client, redis):
    """The replay marker is set together with the accepted event: a request answered 503
    (here the event stream cannot be written: a real Redis error, the key holds a string) is
    accepted when the sender retries it, and only a repeat of an accepted one is a
    duplicate."""
    body = json.dumps(trigger_payload()).encode()
    headers = standard_webhooks.headers(INGEST, "msg_retry", body)
    send = lambda: client.post(  # noqa: E731
        "/hooks/losant", data=body, headers=headers, content_type="application/json"
    )
    redis.set(keys.events(), "not a stream")
    assert_error(send(), 503, "Unavailable")
    assert not redis.exists(keys.webhook_seen("msg_retry"))
    redis.delete(keys.events())
    retried = send()
    assert retried.status_code == 202 and retried.get_json() == {"accepted": True}
    assert redis.xlen(keys.events()) == 1
    again = send()
    assert again.status_code == 202 and again.get_json() == {"accepted": True, "duplicate": True}
    assert redis.xlen(keys.events()) == 1


# callbacks are counted for their own notebook only


def test_a_callback_token_cannot_count_another_notebooks_execution(app, client, redis):
    """The body's execution id is the sender's to choose: a token of notebook OTHER naming an
    execution of NB must not count as NB's callback (it would hide a missing callback)."""
    components = app.extensions[EXTENSION]
    fence = components.syncs.begin(APP, NB, "job", 0).fence
    record = {"id": EXECUTION, "notebookId": NB, "applicationId": APP, "status": "completed"}
    components.store.upsert(APP, NB, [record], fence=fence)
    other = "5c782b8d4f3a8e51c1db42e5"
    body = {"success": True, "execution": {"id": EXECUTION, "status": "completed"}}
    forged = client.post(f"/callbacks/{tokens.sign(SECRET, APP, other)}", json=body)
    assert forged.status_code == 202
    assert components.store.get(EXECUTION).as_json()["nbrelay"]["callbacksReceived"] == 0
    assert client.post(f"/callbacks/{tokens.sign(SECRET, APP, NB)}", json=body).status_code == 202
    assert components.store.get(EXECUTION).as_json()["nbrelay"]["callbacksReceived"] == 1
