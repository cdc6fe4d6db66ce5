"""RQ's scheduler (which moves retried jobs back to their queue) runs in one worker at a time.
Found by the fault soak: when that worker was SIGKILLed, retried syncs waited up to ten minutes,
RQ's default upkeep interval, for another worker to take the scheduler over."""

from __future__ import annotations

from datetime import timedelta

from rq import Queue
from rq.job import JobStatus
from rq.scheduler import RQScheduler

from service import defaults
from service.queues import ALERTS_QUEUE
from service.runtime.processes import wait_until


def test_a_worker_takes_over_rq_scheduler_when_its_holder_dies(stack_factory, redis):
    stack = stack_factory(workers=0, scheduler=False)
    lock = RQScheduler.get_locking_key(ALERTS_QUEUE)
    holder = stack.start_worker()
    wait_until(lambda: redis.exists(lock), 20, "the first worker to run RQ's scheduler")
    stack.start_worker()
    wait_until(lambda: redis.scard("rq:workers") == 2, 20, "the second worker")
    holder.kill()
    # The dead holder's lock would expire 61 s after its last renewal; deleting it stands for
    # that wait, which the test need not sit through.
    redis.delete(lock)
    job = Queue(ALERTS_QUEUE, connection=redis).enqueue_in(timedelta(seconds=1), "time.sleep", 0)
    wait_until(
        lambda: job.get_status(refresh=True) == JobStatus.FINISHED,
        defaults.RQ_WORKER_TTL + defaults.RQ_MAINTENANCE_INTERVAL,
        "the scheduled job to run",
    )
