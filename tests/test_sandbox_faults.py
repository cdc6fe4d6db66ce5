"""The sandbox's scripted faults beyond 500s and dropped callbacks: rate limiting (429 with
`Retry-After`), `execute` answers lost after the run was queued, and the journal of the notebook
patches applied (`patches` in the stats)."""

from __future__ import annotations

import pytest
import requests

from sandbox.stats import Stats
from service.losant import LosantClient
from service.losant.errors import OutcomeUnknown, RateLimited
from tests.support.http_server import ScriptedServer
from tests.support.sandbox import SandboxApp, SandboxProcess


def _path(sandbox_app: SandboxApp, notebook_id: str) -> str:
    return f"/applications/{sandbox_app}/notebooks/{notebook_id}"


def test_rate_limited_requests_get_429_with_retry_after(
    sandbox: SandboxProcess, sandbox_app: SandboxApp
) -> None:
    notebook = sandbox_app.create_notebook()
    path = _path(sandbox_app, notebook["id"])
    behaviour = sandbox_app.set_behaviour(notebook["id"], rateLimited=1, retryAfterSeconds=2.2)
    assert (behaviour["rateLimited"], behaviour["retryAfterSeconds"]) == (1, 2.2)

    limited = [
        sandbox.request("GET", path + "/logs"),
        sandbox.request("POST", path + "/execute", json={}),
        sandbox.request("PATCH", path, json={"description": "never applied"}),
    ]
    for response in limited:
        assert response.status_code == 429
        assert response.headers["Retry-After"] == "3"  # 2.2 s, rounded up
        assert response.json() == {
            "type": "TooManyRequests",
            "message": "Scripted rate limit exceeded",
        }
    own = LosantClient(sandbox.url, sandbox.token, max_retries=0)
    with pytest.raises(RateLimited) as caught:
        own.logs(sandbox_app.id, notebook["id"])
    assert caught.value.retry_after == 3

    sandbox_app.set_behaviour(notebook["id"], rateLimited=1)  # retryAfterSeconds: default 1
    assert sandbox.request("GET", path).headers["Retry-After"] == "1"
    sandbox_app.set_behaviour(notebook["id"], rateLimited=1, serverErrors=1)
    assert sandbox.request("GET", path).status_code == 500  # serverErrors are decided first

    sandbox_app.set_behaviour(notebook["id"], rateLimited=0, retryAfterSeconds=2.2)
    answered = sandbox.request("GET", path + "/logs")
    assert answered.status_code == 200 and "Retry-After" not in answered.headers
    assert answered.json() == []  # the limited execute created nothing
    assert "description" not in sandbox.call("GET", path)  # nor the limited patch anything
    stats = sandbox_app.stats(notebook["id"])
    assert stats["requests"] == {"logs": 3, "execute": 1, "patch": 1, "get": 3}
    assert stats["patches"] == []


def test_a_lost_execute_answer_leaves_the_run_queued(
    sandbox: SandboxProcess, sandbox_app: SandboxApp, http_server: ScriptedServer
) -> None:
    notebook = sandbox_app.create_notebook()
    path = _path(sandbox_app, notebook["id"])
    sandbox_app.set_behaviour(
        notebook["id"], status="completed", durationSeconds=0.2, lostExecuteAnswers=1
    )
    log_before = len(sandbox.log())

    with pytest.raises(requests.ConnectionError):
        sandbox.request("POST", path + "/execute", json={"callbackUrl": http_server.url})
    (execution,) = sandbox_app.logs(notebook["id"])
    assert sandbox_app.wait_for_status(notebook["id"], execution["id"])["status"] == "completed"
    (callback,) = http_server.wait_for_requests(1)
    assert callback.json()["execution"]["id"] == execution["id"]

    # nbrelay's own client cannot tell whether the run was queued: exactly what it must survive
    own = LosantClient(sandbox.url, sandbox.token)
    with pytest.raises(OutcomeUnknown) as caught:
        own.execute(sandbox_app.id, notebook["id"])
    assert caught.value.status is None and "may or may not" in caught.value.message
    assert len(sandbox_app.logs(notebook["id"])) == 2

    sandbox_app.set_behaviour(notebook["id"], status="completed", lostExecuteAnswers=0)
    answered = sandbox_app.execute(notebook["id"])
    assert {e["id"] for e in sandbox_app.logs(notebook["id"])} >= {execution["id"], answered}
    stats = sandbox_app.stats(notebook["id"])
    assert (stats["executeAnswersLost"], stats["requests"]["execute"]) == (2, 3)
    new_log = sandbox.log()[log_before:]
    assert "Traceback" not in new_log and "Error on request" not in new_log


def test_the_patch_journal_counts_each_body_applied(
    sandbox: SandboxProcess, sandbox_app: SandboxApp
) -> None:
    notebook = sandbox_app.create_notebook()
    path = _path(sandbox_app, notebook["id"])
    first = {"description": "nightly", "name": "etl"}
    sandbox.call("PATCH", path, json=first)
    sandbox.call("PATCH", path, json={"name": "etl", "description": "nightly"})  # same JSON
    sandbox.call("PATCH", path, json={"description": "hourly"})

    refused = sandbox.request("PATCH", path, json={"colour": "red"})
    assert refused.status_code == 400
    sandbox_app.set_behaviour(notebook["id"], serverErrors=1)
    assert sandbox.request("PATCH", path, json={"description": "hourly"}).status_code == 500
    sandbox_app.set_behaviour(notebook["id"], rateLimited=1)
    assert sandbox.request("PATCH", path, json={"description": "hourly"}).status_code == 429

    patches = sandbox_app.stats(notebook["id"])["patches"]
    assert patches == [
        {"body": first, "applied": 2},
        {"body": {"description": "hourly"}, "applied": 1},
    ]
    assert list(patches[0]["body"]) == ["description", "name"]  # the first body, as sent


def test_the_patch_journal_forgets_the_bodies_seen_first() -> None:
    stats = Stats(patch_bodies=2)
    for description in ("a", "b", "a", "c"):
        stats.count_patch("nb", {"description": description})
    assert stats.of("nb")["patches"] == [
        {"body": {"description": "b"}, "applied": 1},
        {"body": {"description": "c"}, "applied": 1},
    ]
    body = {"inputs": [{"fileName": "x.csv"}]}
    stats.count_patch("other", body)
    body["inputs"].clear()  # the journal keeps the body as it was applied
    assert stats.of("other")["patches"][0]["body"] == {"inputs": [{"fileName": "x.csv"}]}


@pytest.mark.parametrize(
    ("field", "value"),
    [("rateLimited", 2), ("retryAfterSeconds", -1), ("lostExecuteAnswers", 1.5)],
)
def test_bad_fault_settings_are_refused(
    sandbox: SandboxProcess, sandbox_app: SandboxApp, field: str, value: float
) -> None:
    notebook = sandbox_app.create_notebook()
    path = f"/_sandbox{_path(sandbox_app, notebook['id'])}/behaviour"
    response = sandbox.request("PUT", path, json={field: value})
    assert response.status_code == 400
    assert response.json()["type"] == "Validation"
    assert f"body.{field}" in response.json()["message"]
    assert sandbox.call("GET", path)[field] == (1 if field == "retryAfterSeconds" else 0)
