"""Which queue an action goes to, and the order in which a worker takes the queues."""

from service import defaults
from service.followups.actions.dispatcher import ActionDispatcher
from service.followups.actions.ledger import Ledger
from service.queues import ACTIONS_QUEUE, ALERTS_QUEUE, QUEUES, STARTS_QUEUE, SYNC_QUEUE, Queues
from tests.support.clock import ManualClock


def test_first_steps_of_new_runs_wait_behind_the_work_of_runs_under_way(redis):
    queues = Queues(redis, sync_retry_intervals=[1], action_timeout=60, failure_ttl=3600)
    queues.enqueue_action("execute", "run:r1:b:1")
    queues.enqueue_action("execute", "run:r2:a:1", starts_run=True)
    assert queues.queue(ACTIONS_QUEUE).get_job_ids() != []
    (start,) = queues.queue(STARTS_QUEUE).get_job_ids()
    assert queues.fetch(start).args == ("run:r2:a:1",)
    assert QUEUES == (ACTIONS_QUEUE, SYNC_QUEUE, ALERTS_QUEUE, STARTS_QUEUE)


def test_a_start_handed_out_again_goes_back_to_the_starts_queue(text_redis):
    clock = ManualClock()
    ledger = Ledger(text_redis, ttl=3600, clock=clock)
    enqueued: list[tuple[str, str, bool]] = []
    dispatcher = ActionDispatcher(
        ledger, {}, lambda kind, key, starts_run: enqueued.append((kind, key, starts_run)),
        clock=clock,
    )  # fmt: skip
    dispatcher.open("run:r1:a:1", "execute", {"notebook": "a"}, starts_run=True)
    clock.now += defaults.ACTION_LEASE + 1  # no worker took it in time
    dispatcher.dispatch_due()
    assert enqueued == [("execute", "run:r1:a:1", True)] * 2
