"""The RQ side of nbrelay: its queues, how a sync job is enqueued, and the dead-letter registry.

A sync job that fails is retried after each of `NBRELAY_SYNC_RETRY_INTERVALS` (RQ's scheduler,
which every `nbrelay worker` runs, moves it back to the queue). After the last attempt it stays
in RQ's FailedJobRegistry: that registry is nbrelay's dead-letter registry, listed and replayed
by `nbrelay dead-letters`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import redis as redis_lib
from rq import Queue, Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.registry import FailedJobRegistry

from service import defaults
from service.errors import UsageProblem

if TYPE_CHECKING:
    from service.context import Context

SYNC_QUEUE = "nbrelay-sync"
ACTIONS_QUEUE = "nbrelay-actions"  # follow-up actions: execute, retry, patch
ALERTS_QUEUE = "nbrelay-alerts"  # notifications, apart so a slow channel never delays a step
QUEUES: tuple[str, ...] = (SYNC_QUEUE, ACTIONS_QUEUE, ALERTS_QUEUE)  # what `nbrelay worker` serves
SYNC_FUNCTION = "workers.sync.sync"
RESULT_TTL = 3600  # seconds a finished job's result is kept


def queue(ctx: Context, name: str = SYNC_QUEUE) -> Queue:
    return Queue(name, connection=ctx.rq_redis)


def enqueue_sync(ctx: Context, application_id: str, notebook_id: str, job_id: str) -> Job:
    intervals = list(ctx.settings.sync_retry_intervals)
    return queue(ctx).enqueue_call(
        SYNC_FUNCTION,
        args=(application_id, notebook_id),
        job_id=job_id,
        retry=Retry(max=len(intervals), interval=intervals),
        timeout=defaults.SYNC_JOB_TIMEOUT,
        result_ttl=RESULT_TTL,
        failure_ttl=ctx.settings.retention_days * 24 * 3600,
        description=f"sync notebook {notebook_id} of application {application_id}",
    )


def fetch(ctx: Context, job_id: str) -> Job | None:
    try:
        return Job.fetch(job_id, connection=ctx.rq_redis)
    except NoSuchJobError:
        return None


@dataclass(frozen=True)
class QueueStats:
    name: str
    depth: int
    oldest_age: float
    dead_letters: int


def queue_stats(rq_redis: redis_lib.Redis, now: float | None = None) -> list[QueueStats]:
    """Depth, age of the oldest waiting job and dead letters of every nbrelay queue."""
    moment = time.time() if now is None else now
    stats = []
    for name in QUEUES:
        q = Queue(name, connection=rq_redis)
        oldest = 0.0
        head = q.get_job_ids(0, 1)
        job = Job.fetch_many(head, connection=rq_redis)[0] if head else None
        if job is not None and job.enqueued_at is not None:
            oldest = max(0.0, moment - job.enqueued_at.replace(tzinfo=UTC).timestamp())
        failed = FailedJobRegistry(queue=q).count
        stats.append(QueueStats(name, q.count, oldest, failed))
    return stats


@dataclass(frozen=True)
class DeadLetter:
    job_id: str
    queue: str
    description: str
    failed_at: datetime | None
    error: str
    application_id: str | None
    notebook_id: str | None


def dead_letters(ctx: Context) -> list[DeadLetter]:
    """Jobs that failed for good, most recent failure first."""
    letters = []
    for name in QUEUES:
        registry = FailedJobRegistry(queue=queue(ctx, name))
        ids = registry.get_job_ids()
        for job in Job.fetch_many(ids, connection=ctx.rq_redis):
            if job is not None:
                letters.append(_dead_letter(job, name))
    epoch = datetime.min.replace(tzinfo=UTC)
    return sorted(letters, key=lambda d: d.failed_at or epoch, reverse=True)


def _dead_letter(job: Job, queue_name: str) -> DeadLetter:
    result = job.latest_result()
    error = (result.exc_string or "") if result is not None else ""
    lines = [line for line in error.strip().splitlines() if line.strip()]
    is_sync = job.func_name == SYNC_FUNCTION and len(job.args) == 2
    ended = job.ended_at.replace(tzinfo=UTC) if job.ended_at else None
    return DeadLetter(
        job.id,
        queue_name,
        job.description or job.func_name or "",
        ended,
        lines[-1] if lines else "",
        job.args[0] if is_sync else None,
        job.args[1] if is_sync else None,
    )


def replay(ctx: Context, job_ids: Iterable[str] | None = None) -> list[str]:
    """Replay dead letters (all, or those named); returns the ids replayed.

    A failed sync is replayed as a fresh sync request for its notebook, so it coalesces with
    any sync already queued for it; any other job is put back on its queue.
    """
    from service.syncstate import request_sync

    letters = {letter.job_id: letter for letter in dead_letters(ctx)}
    wanted = list(letters) if job_ids is None else list(job_ids)
    unknown = [job_id for job_id in wanted if job_id not in letters]
    if unknown:
        raise UsageProblem(f"no dead letter with id {unknown[0]}")
    for job_id in wanted:
        letter = letters[job_id]
        registry = FailedJobRegistry(queue=queue(ctx, letter.queue))
        if letter.application_id and letter.notebook_id:
            registry.remove(job_id, delete_job=True)
            ctx.syncs.clear_dead(letter.application_id, letter.notebook_id)
            request_sync(ctx, letter.application_id, letter.notebook_id, "replay")
        else:
            registry.requeue(job_id)
    return wanted
