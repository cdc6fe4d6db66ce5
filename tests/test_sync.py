"""The sync job run in-process against the sandbox and the test's private Redis."""

import threading

import pytest

from service import keys
from service.events.hints import Incoming, parse_hint
from service.losant import Unavailable
from service.runtime.processes import wait_until

TIMESTAMPS = (
    "runQueuedAt",
    "runStartedAt",
    "inputsCompletedAt",
    "notebookCompletedAt",
    "outputsCompletedAt",
)


@pytest.fixture
def components(make_components):
    return make_components(
        NBRELAY_PUBLIC_URL="http://127.0.0.1:9",
        NBRELAY_SECRET="sync-test-secret-0123456789",
        NBRELAY_SYNC_LEASE="5",
    )


def scripted(app, status: str, **behaviour) -> str:
    notebook = app.create_notebook()
    app.set_behaviour(notebook["id"], status=status, durationSeconds=0.05, **behaviour)
    return notebook["id"]


def run_directly(app, notebook_id: str, count: int = 1) -> list[str]:
    """Executions started on the sandbox itself (no callback), waited for to end."""
    ids = [app.execute(notebook_id) for _ in range(count)]
    for execution_id in ids:
        app.wait_for_status(notebook_id, execution_id)
    return ids


def logs_calls(app, notebook_id: str) -> int:
    return app.stats(notebook_id)["requests"].get("logs", 0)


def sync_now(components, app, notebook_id, job_id="job-1") -> str:
    with components.redis.pipeline() as pipe:
        components.syncs.mark_dirty(pipe, app.id, notebook_id, 0)
        pipe.execute()
    return components.sync.run(app.id, notebook_id, job_id=job_id)


def test_a_sync_stores_losants_records_and_emits_each_transition_once(components, sandbox_app):
    notebook_id = scripted(sandbox_app, "errored")
    (execution_id,) = run_directly(sandbox_app, notebook_id)
    assert sync_now(components, sandbox_app, notebook_id) == "ok"
    record = components.store.get(execution_id)
    assert record.losant == sandbox_app.sandbox.execution(sandbox_app.id, notebook_id, execution_id)
    assert record.status == "errored"
    assert all(record.losant.get(field) for field in TIMESTAMPS)
    assert [t["execution"] for t in components.store.transitions()] == [execution_id]
    assert sync_now(components, sandbox_app, notebook_id, "job-2") == "ok"
    assert len(components.store.transitions()) == 1
    assert components.syncs.dirty() == []


def test_the_limit_grows_until_every_execution_since_the_cursor_is_read(components, sandbox_app):
    notebook_id = scripted(sandbox_app, "completed")
    ids = run_directly(sandbox_app, notebook_id, 25)
    before = logs_calls(sandbox_app, notebook_id)
    assert sync_now(components, sandbox_app, notebook_id) == "ok"
    assert logs_calls(sandbox_app, notebook_id) - before == 2  # limit 10, then 40
    stored = components.store.query(
        application_id=sandbox_app.id, notebook_id=notebook_id, limit=100
    )
    assert sorted(r.id for r in stored.items) == sorted(ids)
    assert len(components.store.transitions(100)) == 25


def test_the_callback_body_is_only_a_hint(components, sandbox_app):
    notebook_id = scripted(sandbox_app, "errored")
    (execution_id,) = run_directly(sandbox_app, notebook_id)
    claim = {"success": True, "execution": {"id": execution_id, "status": "completed"}}
    body = str(claim).replace("'", '"').replace("True", "true").encode()
    hint = parse_hint(body)
    components.ingress.accept(
        Incoming("callback", sandbox_app.id, notebook_id, body, "application/json", hint)
    )
    status = components.syncs.status(sandbox_app.id, notebook_id)
    assert components.sync.run(sandbox_app.id, notebook_id, job_id=status.active) == "ok"
    assert components.store.get(execution_id).status == "errored"
    assert components.store.transitions()[0]["status"] == "errored"


def test_a_losant_error_leaves_the_notebook_dirty(components, sandbox_app):
    notebook_id = scripted(sandbox_app, "completed", serverErrors=1)
    job_id = components.ingress.request_sync(sandbox_app.id, notebook_id, "test")
    with pytest.raises(Unavailable):
        components.sync.run(sandbox_app.id, notebook_id, job_id=job_id, final_attempt=False)
    status = components.syncs.status(sandbox_app.id, notebook_id)
    assert status.dirty_since is not None and status.active == job_id and not status.leased
    assert "500" in status.last_error
    with pytest.raises(Unavailable):
        components.sync.run(sandbox_app.id, notebook_id, job_id=job_id, final_attempt=True)
    status = components.syncs.status(sandbox_app.id, notebook_id)
    assert (status.active, status.dead) == (None, job_id)


def test_hints_that_arrive_during_a_read_cause_one_more_read(components, sandbox_app):
    notebook_id = scripted(sandbox_app, "completed", logsLatencySeconds=0.5)
    before = logs_calls(sandbox_app, notebook_id)
    job_id = components.ingress.request_sync(sandbox_app.id, notebook_id, "test")
    outcome = []
    worker = threading.Thread(
        target=lambda: outcome.append(
            components.sync.run(sandbox_app.id, notebook_id, job_id=job_id)
        )
    )
    worker.start()
    wait_until(
        lambda: components.syncs.status(sandbox_app.id, notebook_id).leased, 5, "the sync to start"
    )
    assert [
        components.ingress.request_sync(sandbox_app.id, notebook_id, "test") for _ in range(10)
    ] == [None] * 10
    worker.join(10)
    assert outcome == ["ok"]
    assert logs_calls(sandbox_app, notebook_id) - before == 2
    assert components.syncs.dirty() == []


def test_a_sync_that_loses_its_lease_writes_nothing(components, sandbox_app):
    notebook_id = scripted(sandbox_app, "completed")
    (execution_id,) = run_directly(sandbox_app, notebook_id)
    sandbox_app.set_behaviour(notebook_id, status="completed", logsLatencySeconds=1.0)
    job_id = components.ingress.request_sync(sandbox_app.id, notebook_id, "test")
    outcome = []
    stale = threading.Thread(
        target=lambda: outcome.append(
            components.sync.run(sandbox_app.id, notebook_id, job_id=job_id)
        )
    )
    stale.start()
    wait_until(
        lambda: components.syncs.status(sandbox_app.id, notebook_id).leased, 5, "the sync to start"
    )
    components.redis.delete(keys.sync_lease(sandbox_app.id, notebook_id))  # as if it expired
    newer = components.syncs.begin(sandbox_app.id, notebook_id, "newer", 0)
    stale.join(10)
    assert outcome == ["lease-lost"]
    assert components.store.get(execution_id) is None
    assert components.syncs.heartbeat(newer)
