"""The reconciler's passes, run in-process on the test's private Redis and the sandbox."""

import time

import pytest
from rq import Queue

from service import jobs, keys
from service.config import Settings
from service.context import Context
from service.syncstate import request_sync
from workers.reconcile import Scheduler, check_pending, recover

DAY = 24 * 3600


@pytest.fixture
def ctx(redis, redis_server, sandbox_app):
    settings = Settings.from_env(
        {
            "NBRELAY_REDIS_URL": redis_server.url,
            "LOSANT_API_URL": sandbox_app.sandbox.url,
            "LOSANT_API_TOKEN": sandbox_app.sandbox.token,
            "LOSANT_APPLICATION_ID": sandbox_app.id,
            "NBRELAY_RECONCILE_INTERVAL": "10",
            "NBRELAY_SYNC_LEASE": "5",
            "NBRELAY_WATCH": "etl,5c782b8d4f3a8e51c1db42e4,missing",
            "NBRELAY_POLL_INTERVAL": "60",
        },
        dotenv_path=None,
    )
    context = Context.from_settings(settings)
    yield context
    context.close()


def queued(ctx) -> list:
    return Queue(jobs.SYNC_QUEUE, connection=ctx.rq_redis).get_jobs()


def request(ctx, app, notebook_id: str, execution_id: str, requested_at: float) -> None:
    ctx.store.record_request(
        application_id=app,
        notebook_id=notebook_id,
        execution_id=execution_id,
        requested_by="test",
        requested_at=requested_at,
        first_check_at=requested_at + 10,
    )


def test_started_runs_are_checked_on_a_doubling_schedule_and_marked_overdue(ctx, sandbox_app):
    notebook_id, execution_id = "5c782b8d4f3a8e51c1db42e4", "5c7d3f9cd32c87a49f04c260"
    start = 1_800_000_000.0
    request(ctx, sandbox_app.id, notebook_id, execution_id, start)
    assert check_pending(ctx, start + 5) == 0 and queued(ctx) == []
    assert check_pending(ctx, start + 10) == 1
    (job,) = queued(ctx)
    assert job.args == (sandbox_app.id, notebook_id)
    checks = ctx.redis.zscore(
        keys.pending_checks(), f"{sandbox_app.id}:{notebook_id}:{execution_id}"
    )
    assert checks == start + 10 + 20  # then 40, 80, ...
    assert ctx.store.get(execution_id).meta.get("overdue_at") is None
    late = start + 60 * 60 + 300 + 1  # assumed 60 minutes + slack
    assert check_pending(ctx, late) == 1
    assert ctx.store.get(execution_id).meta["overdue_at"]
    assert len(queued(ctx)) == 1  # the notebook's sync is still queued: the check joined it


def test_a_dirty_notebook_whose_job_vanished_gets_a_new_one(ctx, sandbox_app):
    notebook_id = "5c782b8d4f3a8e51c1db42e4"
    now = time.time()
    with ctx.redis.pipeline() as pipe:  # marked, but the process died before enqueueing
        ctx.syncs.mark_dirty(pipe, sandbox_app.id, notebook_id, now)
        lost = pipe.execute()[-1]
    assert recover(ctx, now + 1) == 0  # too early to tell
    assert recover(ctx, now + 6) == 1
    (job,) = queued(ctx)
    assert job.id != lost and ctx.syncs.status(sandbox_app.id, notebook_id).active == job.id
    assert recover(ctx, now + 7) == 0  # the new job is queued: alive


def test_a_dead_letter_waits_for_replay(ctx, sandbox_app):
    notebook_id = "5c782b8d4f3a8e51c1db42e4"
    job_id = request_sync(ctx, sandbox_app.id, notebook_id, "test")
    ctx.syncs.fail(sandbox_app.id, notebook_id, job_id, fence=None, error="x", final=True, now=0)
    Queue(jobs.SYNC_QUEUE, connection=ctx.rq_redis).empty()
    assert recover(ctx, time.time() + 60) == 0


def test_one_scheduler_leads(ctx):
    first, second = Scheduler(ctx), Scheduler(ctx)
    assert first.tick() is True
    assert second.tick() is False
    first.resign()
    assert second.tick() is True


def test_watched_notebooks_are_resolved_and_polled(ctx, sandbox_app):
    etl = sandbox_app.create_notebook("etl")["id"]
    scheduler = Scheduler(ctx)
    assert scheduler.poll_watched(1000.0) == 2  # etl by name, the id as it is; "missing" is not
    assert sorted(job.args[1] for job in queued(ctx)) == sorted([etl, "5c782b8d4f3a8e51c1db42e4"])
    assert ctx.store.notebook_names()[keys.notebook_ref(sandbox_app.id, etl)] == "etl"
    assert scheduler.poll_watched(1030.0) == 0  # not due yet
    assert scheduler.poll_watched(1061.0) == 2
