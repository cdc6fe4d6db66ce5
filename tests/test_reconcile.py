"""The reconciler's passes and the scheduler's leadership, run in-process on the test's private
Redis and the sandbox."""

import time

import pytest
from rq import Queue

from service import keys
from service.queues import SYNC_QUEUE
from workers.scheduler import Scheduler

DAY = 24 * 3600


@pytest.fixture
def components(make_components):
    return make_components(
        NBRELAY_RECONCILE_INTERVAL="10",
        NBRELAY_SYNC_LEASE="5",
        NBRELAY_WATCH="etl,5c782b8d4f3a8e51c1db42e4,missing",
        NBRELAY_POLL_INTERVAL="60",
    )


def queued(components) -> list:
    return Queue(SYNC_QUEUE, connection=components.rq_redis).get_jobs()


def request(components, app, notebook_id: str, execution_id: str, requested_at: float) -> None:
    components.store.record_request(
        application_id=app,
        notebook_id=notebook_id,
        execution_id=execution_id,
        requested_by="test",
        requested_at=requested_at,
        first_check_at=requested_at + 10,
    )


def test_started_runs_are_checked_on_a_doubling_schedule_and_marked_overdue(
    components, sandbox_app
):
    notebook_id, execution_id = "5c782b8d4f3a8e51c1db42e4", "5c7d3f9cd32c87a49f04c260"
    start = 1_800_000_000.0
    request(components, sandbox_app.id, notebook_id, execution_id, start)
    assert components.reconciler.check_pending(start + 5) == 0 and queued(components) == []
    assert components.reconciler.check_pending(start + 10) == 1
    (job,) = queued(components)
    assert job.args == (sandbox_app.id, notebook_id)
    checks = components.redis.zscore(
        keys.pending_checks(), f"{sandbox_app.id}:{notebook_id}:{execution_id}"
    )
    assert checks == start + 10 + 20  # then 40, 80, ...
    assert components.store.get(execution_id).meta.get("overdue_at") is None
    late = start + 60 * 60 + 300 + 1  # assumed 60 minutes + slack
    assert components.reconciler.check_pending(late) == 1
    assert components.store.get(execution_id).meta["overdue_at"]
    assert len(queued(components)) == 1  # the notebook's sync is still queued: the check joined it


def test_a_dirty_notebook_whose_job_vanished_gets_a_new_one(components, sandbox_app):
    notebook_id = "5c782b8d4f3a8e51c1db42e4"
    now = time.time()
    with components.redis.pipeline() as pipe:  # marked, but the process died before enqueueing
        components.syncs.mark_dirty(pipe, sandbox_app.id, notebook_id, now)
        lost = pipe.execute()[-1]
    assert components.reconciler.recover(now + 1) == 0  # too early to tell
    assert components.reconciler.recover(now + 6) == 1
    (job,) = queued(components)
    assert job.id != lost and components.syncs.status(sandbox_app.id, notebook_id).active == job.id
    assert components.reconciler.recover(now + 7) == 0  # the new job is queued: alive


def test_a_job_left_queued_on_no_queue_is_replaced(components, sandbox_app):
    """Found by the fault soak: a worker killed between taking a sync job off its queue and
    starting it left the job `queued` on no queue, and its notebook waited for ever."""
    notebook_id = "5c782b8d4f3a8e51c1db42e4"
    now = time.time()
    job_id = components.ingress.request_sync(sandbox_app.id, notebook_id, "test", now=now)
    components.rq_redis.lrem(f"rq:queue:{SYNC_QUEUE}", 0, job_id)  # taken; the worker died
    assert components.reconciler.recover(now + 1) == 0  # too early to tell
    assert components.reconciler.recover(now + 6) == 1
    (job,) = queued(components)
    assert (
        job.id != job_id and components.syncs.status(sandbox_app.id, notebook_id).active == job.id
    )
    assert components.queues.fetch(job_id) is None
    assert components.reconciler.recover(now + 12) == 0  # the new job is on its queue


def test_a_dead_letter_waits_for_replay(components, sandbox_app):
    notebook_id = "5c782b8d4f3a8e51c1db42e4"
    job_id = components.ingress.request_sync(sandbox_app.id, notebook_id, "test")
    components.syncs.fail(
        sandbox_app.id, notebook_id, job_id, fence=None, error="x", final=True, now=0
    )
    Queue(SYNC_QUEUE, connection=components.rq_redis).empty()
    assert components.reconciler.recover(time.time() + 60) == 0


def test_one_scheduler_leads(components):
    first, second = Scheduler(components), Scheduler(components)
    assert first.tick() is True
    assert second.tick() is False
    first.resign()
    assert second.tick() is True


def test_watched_notebooks_are_resolved_and_polled(components, sandbox_app):
    etl = sandbox_app.create_notebook("etl")["id"]
    reconciler = components.reconciler
    assert reconciler.poll_watched(1000.0) == 2  # etl by name, the id as it is; "missing" is not
    assert sorted(job.args[1] for job in queued(components)) == sorted(
        [etl, "5c782b8d4f3a8e51c1db42e4"]
    )
    assert components.store.notebook_names()[keys.notebook_ref(sandbox_app.id, etl)] == "etl"
    assert reconciler.poll_watched(1030.0) == 0  # not due yet
    assert reconciler.poll_watched(1061.0) == 0  # due, but their syncs still wait: no second one
    assert len(queued(components)) == 2
