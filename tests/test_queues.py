"""Which queue an action goes to, and the order in which a worker takes the queues."""

from service.queues import ACTIONS_QUEUE, ALERTS_QUEUE, QUEUES, STARTS_QUEUE, SYNC_QUEUE, Queues


def test_first_steps_of_new_runs_wait_behind_the_work_of_runs_under_way(redis):
    queues = Queues(redis, sync_retry_intervals=[1], action_timeout=60, failure_ttl=3600)
    queues.enqueue_action("execute", "run:r1:b:1")
    queues.enqueue_action("execute", "run:r2:a:1", starts_run=True)
    assert queues.queue(ACTIONS_QUEUE).get_job_ids() != []
    (start,) = queues.queue(STARTS_QUEUE).get_job_ids()
    assert queues.fetch(start).args == ("run:r2:a:1",)
    assert QUEUES == (ACTIONS_QUEUE, SYNC_QUEUE, ALERTS_QUEUE, STARTS_QUEUE)
