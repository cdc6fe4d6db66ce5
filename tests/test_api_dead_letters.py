"""`/api/dead-letters`: listing real dead letters (syncs that failed for good in a real RQ worker
against the sandbox) and replaying them, as `nbrelay dead-letters` does."""

from __future__ import annotations

import time

import pytest
from rq import Queue

from service.queues import ALERTS_QUEUE, SYNC_QUEUE
from service.web import create_app
from tests.support.dead_letters import SETTINGS, make_dead_letter
from tests.support.web import API_TOKEN, CONSOLE
from workers.runtime import run_worker

HEADERS = {"Authorization": f"Bearer {API_TOKEN}"}


@pytest.fixture
def components(make_components):
    return make_components(**CONSOLE, **SETTINGS)


@pytest.fixture
def client(components):
    return create_app(components=components).test_client()


@pytest.fixture
def dead(components, sandbox_app):
    """Two dead letters: job id -> notebook id."""
    jobs = [make_dead_letter(components, sandbox_app, name) for name in ("A", "B")]
    return {job: components.queues.fetch(job).args[1] for job in jobs}


def queued(components) -> list[str]:
    return Queue(SYNC_QUEUE, connection=components.rq_redis).get_job_ids()


def assert_error(response, status: int) -> str:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"type", "message"}
    return body["message"]


def test_the_list_names_each_failed_sync_its_notebook_and_error(client, dead, sandbox_app):
    answer = client.get("/api/dead-letters", headers=HEADERS)
    assert answer.status_code == 200
    items = answer.get_json()["items"]
    assert {i["jobId"]: i["notebookId"] for i in items} == dead
    for item in items:
        assert item["applicationId"] == sandbox_app.id and item["queue"] == SYNC_QUEUE
        assert item["failedAt"] and "sync notebook" in item["description"]
        assert "Scripted server error" in item["error"]
    assert items[0]["failedAt"] >= items[1]["failedAt"]  # most recent failure first


def test_replaying_one_queues_a_fresh_sync_of_its_notebook_only(client, components, dead):
    first, second = dead
    answer = client.post(f"/api/dead-letters/{first}/replay", headers=HEADERS)
    assert answer.status_code == 200 and answer.get_json() == {"replayed": [first]}
    ((job),) = [components.queues.fetch(j) for j in queued(components)]
    assert job.args[1] == dead[first]
    assert [d.job_id for d in components.dead_letters.all()] == [second]
    message = assert_error(client.post(f"/api/dead-letters/{first}/replay", headers=HEADERS), 404)
    assert message == f"no dead letter with id {first}"


def test_replaying_all_or_those_named(client, components, dead):
    first, second = dead
    named = client.post("/api/dead-letters/replay", headers=HEADERS, json={"jobIds": [second]})
    assert named.get_json() == {"replayed": [second]}
    assert [d.job_id for d in components.dead_letters.all()] == [first]
    every = client.post("/api/dead-letters/replay", headers=HEADERS)
    assert every.status_code == 200 and every.get_json() == {"replayed": [first]}
    assert components.dead_letters.all() == []
    assert client.post("/api/dead-letters/replay", headers=HEADERS).get_json() == {"replayed": []}
    assert client.get("/api/dead-letters", headers=HEADERS).get_json() == {"items": []}


def test_an_unknown_id_replays_none_of_them(client, components, dead):
    first, _ = dead
    answer = client.post(
        "/api/dead-letters/replay", headers=HEADERS, json={"jobIds": [first, "sync-nope"]}
    )
    assert assert_error(answer, 404) == "no dead letter with id sync-nope"
    assert len(components.dead_letters.all()) == 2 and queued(components) == []


@pytest.mark.parametrize(
    "body",
    [
        {"jobIds": "sync-1"},
        {"jobIds": [1]},
        {"jobIds": [""]},
        {"jobIds": None},
        {"jobs": []},
        [],
    ],
)
def test_bad_bodies_are_refused(client, body):
    answer = client.post("/api/dead-letters/replay", headers=HEADERS, json=body)
    assert_error(answer, 400)


def test_a_malformed_body_is_refused(client):
    answer = client.post(
        "/api/dead-letters/replay",
        headers={**HEADERS, "Content-Type": "application/json"},
        data="{",
    )
    assert_error(answer, 400)
    plain = client.post("/api/dead-letters/replay", headers=HEADERS, data="jobIds=x")
    assert_error(plain, 415)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/dead-letters"),
        ("post", "/api/dead-letters/replay"),
        ("post", "/api/dead-letters/sync-1/replay"),
    ],
)
def test_the_api_token_is_needed(client, method, path):
    assert_error(getattr(client, method)(path), 401)
    assert_error(getattr(client, method)(path, headers={"Authorization": "Bearer nope"}), 401)


def test_a_replayed_job_is_not_failed_again_by_a_killed_workers_leftovers(
    client, components, tmp_path
):
    """Found by the fault soak: a job whose earlier run's worker was SIGKILLed names that run in
    RQ's records after the run's own record is gone; requeued as it was, the job failed again at
    the end of every run, so replaying it never cleared the dead letter."""
    target = tmp_path / "made-later"
    queue = Queue(ALERTS_QUEUE, connection=components.rq_redis)
    # As nbrelay enqueues its action jobs: no result kept (`result_ttl=0`), so a run that
    # succeeds deletes the job, which is where the leftover bites.
    job = queue.enqueue("os.remove", str(target), result_ttl=0, failure_ttl=3600)
    run_worker(components.settings, burst=True)  # the file is missing: the job fails
    assert [d.job_id for d in components.dead_letters.all()] == [job.id]
    # What a killed worker leaves behind: the job names a run whose record is gone.
    components.rq_redis.zadd(f"rq:executions:{job.id}", {"killed-run": time.time() + 3600})
    target.write_text("")
    answer = client.post(f"/api/dead-letters/{job.id}/replay", headers=HEADERS)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    run_worker(components.settings, burst=True)
    assert not target.exists()
    assert components.dead_letters.all() == []
