"""The RQ side of nbrelay: its queues, how jobs are enqueued, and the dead-letter registry.

A sync job that fails is retried after each of `NBRELAY_SYNC_RETRY_INTERVALS` (RQ's delayed-job
scheduler, which every `nbrelay worker` runs, moves it back to the queue). After the last attempt
it stays in RQ's FailedJobRegistry: that registry is nbrelay's dead-letter registry, listed and
replayed by `nbrelay dead-letters` (see `service.dead_letters`).

Jobs are named by the dotted path of their function in `workers`, so that the domain enqueues
them without importing the worker processes' code.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import redis as redis_lib
from rq import Queue, Retry, Worker
from rq.exceptions import NoSuchJobError
from rq.executions import ExecutionRegistry
from rq.intermediate_queue import IntermediateQueue
from rq.job import Job
from rq.registry import FailedJobRegistry

from service import defaults

SYNC_QUEUE = "nbrelay-sync"
ACTIONS_QUEUE = "nbrelay-actions"  # follow-up actions: execute, retry, patch
ALERTS_QUEUE = "nbrelay-alerts"  # notifications, apart so a slow channel never delays a step
STARTS_QUEUE = "nbrelay-starts"  # the first steps of pipeline runs just started: new work
# What `nbrelay worker` serves, in the order it takes jobs: a follow-up action (a pipeline's next
# step, a retry, a patch) never waits behind a backlog of syncs, a slow channel never holds
# either, and the runs under way go before new ones: a flood of starts waits its turn.
QUEUES: tuple[str, ...] = (ACTIONS_QUEUE, SYNC_QUEUE, ALERTS_QUEUE, STARTS_QUEUE)
SYNC_JOB = "workers.sync.sync"
ACTION_JOBS = {  # action kind -> (job function, queue)
    "execute": ("workers.actions.perform", ACTIONS_QUEUE),
    "retry": ("workers.actions.perform", ACTIONS_QUEUE),
    "patch": ("workers.actions.perform", ACTIONS_QUEUE),
    "notify": ("workers.alerts.deliver", ALERTS_QUEUE),
}


@dataclass(frozen=True)
class QueueStats:
    name: str
    depth: int
    oldest_age: float
    dead_letters: int


@dataclass(frozen=True)
class DeadLetter:
    job_id: str
    queue: str
    description: str
    failed_at: datetime | None
    error: str
    application_id: str | None  # set for a sync job: the notebook it was to sync
    notebook_id: str | None


class Queues:
    """nbrelay's RQ queues on `rq_redis` (a connection that does not decode responses)."""

    def __init__(
        self,
        rq_redis: redis_lib.Redis,
        *,
        sync_retry_intervals: Sequence[int],
        action_timeout: float,
        failure_ttl: int,
    ) -> None:
        """`action_timeout` bounds an action job (the action lease); `failure_ttl` is how long a
        failed job stays in the dead letters (the retention)."""
        self.rq_redis = rq_redis
        self.sync_retry_intervals = list(sync_retry_intervals)
        self.action_timeout = int(action_timeout)
        self.failure_ttl = failure_ttl

    def queue(self, name: str = SYNC_QUEUE) -> Queue:
        return Queue(name, connection=self.rq_redis)

    def enqueue_sync(self, application_id: str, notebook_id: str, job_id: str) -> Job:
        intervals = self.sync_retry_intervals
        return self.queue(SYNC_QUEUE).enqueue_call(
            SYNC_JOB,
            args=(application_id, notebook_id),
            job_id=job_id,
            retry=Retry(max=len(intervals), interval=intervals),
            timeout=defaults.SYNC_JOB_TIMEOUT,
            result_ttl=0,  # what a sync did is in the store and its log line, not kept twice
            failure_ttl=self.failure_ttl,
            description=f"sync notebook {notebook_id} of application {application_id}",
        )

    def enqueue_action(self, kind: str, key: str, *, starts_run: bool = False) -> Job:
        """Hand the follow-up action `key` to a worker; `starts_run` when it executes a first
        step of a pipeline run just started (it then waits behind the runs under way)."""
        function, queue = ACTION_JOBS[kind]
        if starts_run:
            queue = STARTS_QUEUE
        return self.queue(queue).enqueue_call(
            function,
            args=(key,),
            timeout=self.action_timeout,
            result_ttl=0,  # the outcome is in the action ledger, not kept twice
            failure_ttl=self.failure_ttl,
            description=f"{kind} {key}",
        )

    def fetch(self, job_id: str) -> Job | None:
        try:
            return Job.fetch(job_id, connection=self.rq_redis)
        except NoSuchJobError:
            return None

    def holds(self, job: Job) -> bool:
        """Whether a job whose status says queued is on its queue, or handed to a worker that
        has not started it yet (RQ's intermediate queue). A worker killed in between can leave
        it on neither, queued for ever."""
        queue_key = self.queue(job.origin).key
        keys_ = (queue_key, IntermediateQueue.get_intermediate_queue_key(queue_key))
        return any(self.rq_redis.lpos(key, job.id) is not None for key in keys_)

    def stats(self, now: float | None = None) -> list[QueueStats]:
        """Depth, age of the oldest waiting job and dead letters of every nbrelay queue."""
        moment = time.time() if now is None else now
        stats = []
        for name in QUEUES:
            q = self.queue(name)
            oldest = 0.0
            head = q.get_job_ids(0, 1)
            job = Job.fetch_many(head, connection=self.rq_redis)[0] if head else None
            if job is not None and job.enqueued_at is not None:
                oldest = max(0.0, moment - job.enqueued_at.replace(tzinfo=UTC).timestamp())
            failed = FailedJobRegistry(queue=q).count
            stats.append(QueueStats(name, q.count, oldest, failed))
        return stats

    def workers(self) -> dict[str, tuple[str, ...]]:
        """The queues served by each live worker, by worker name. A worker registers itself and
        keeps its key alive with heartbeats; one whose key expired is not listed."""
        return {
            worker.name: tuple(worker.queue_names())
            for worker in Worker.all(connection=self.rq_redis)
        }

    def dead_letters(self) -> list[DeadLetter]:
        """Jobs that failed for good, most recent failure first."""
        letters = []
        for name in QUEUES:
            registry = FailedJobRegistry(queue=self.queue(name))
            for job in Job.fetch_many(registry.get_job_ids(), connection=self.rq_redis):
                if job is not None:
                    letters.append(_dead_letter(job, name))
        epoch = datetime.min.replace(tzinfo=UTC)
        return sorted(letters, key=lambda d: d.failed_at or epoch, reverse=True)

    def discard(self, letter: DeadLetter) -> None:
        """Delete a dead letter (its work is redone some other way)."""
        self._forget_runs(letter.job_id)
        FailedJobRegistry(queue=self.queue(letter.queue)).remove(letter.job_id, delete_job=True)

    def requeue(self, letter: DeadLetter) -> None:
        """Put a dead letter back on its queue, as it was."""
        self._forget_runs(letter.job_id)
        FailedJobRegistry(queue=self.queue(letter.queue)).requeue(letter.job_id)

    def _forget_runs(self, job_id: str) -> None:
        """Drop RQ's records of a dead letter's earlier runs (none is under way: it failed for
        good). When the worker of a run was killed, the job can still name that run after its
        record is gone, and RQ then fails the job at the end of every later run, however the run
        went, and cannot delete it either."""
        self.rq_redis.delete(ExecutionRegistry(job_id, connection=self.rq_redis).key)


def _dead_letter(job: Job, queue_name: str) -> DeadLetter:
    result = job.latest_result()
    error = (result.exc_string or "") if result is not None else ""
    lines = [line for line in error.strip().splitlines() if line.strip()]
    is_sync = job.func_name == SYNC_JOB and len(job.args) == 2
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
