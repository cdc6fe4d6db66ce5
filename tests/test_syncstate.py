import pytest

from service import defaults, keys
from service.events.sync_state import DEFERRED, Busy, Claim, LeaseKeeper, LeaseLost, SyncState
from service.runtime.processes import wait_until

APP = "575ec8687ae143cd83dc4a97"
NB = "5c782b8d4f3a8e51c1db42e4"


@pytest.fixture
def syncs(text_redis):
    return SyncState(text_redis, lease_seconds=30, ttl=3600)


def mark(syncs: SyncState, now: float = 1.0, *, urgent: bool = False) -> str | None:
    keys_, args = syncs.dirty_marking(APP, NB, now, urgent=urgent)
    return syncs._mark_dirty(keys=keys_, args=args)


def test_hints_join_the_job_already_queued(syncs):
    first = mark(syncs)
    assert first and first.startswith(f"sync-{APP}-{NB}-")
    assert [mark(syncs) for _ in range(5)] == [None] * 5
    assert syncs.status(APP, NB).active == first
    assert [(a, n) for a, n, _ in syncs.dirty()] == [(APP, NB)]


def test_a_finished_sync_cleans_the_notebook_and_the_next_hint_enqueues_again(syncs):
    job = mark(syncs)
    claim = syncs.begin(APP, NB, job, 2.0)
    assert isinstance(claim, Claim)
    assert syncs.finish_round(claim, 1234, 3.0, listed=7) is None
    status = syncs.status(APP, NB)
    assert (status.active, status.leased, status.dirty_since) == (None, False, None)
    following = mark(syncs, 3.0 + defaults.SYNC_SPACING)  # a quiet spell: enqueued at once
    assert following not in (None, job)
    claim = syncs.begin(APP, NB, following, 4.0)
    assert (claim.cursor_ms, claim.listed, claim.hints) == (1234, 7, 1)


def test_a_hint_soon_after_a_read_waits_for_the_spacing_without_a_job(syncs):
    claim = syncs.begin(APP, NB, mark(syncs), 2.0)
    syncs.finish_round(claim, None, 3.0)
    assert mark(syncs, 3.2) is None  # nothing to enqueue: it waits in `due`
    waiting = syncs.status(APP, NB).active
    assert waiting is not None
    assert syncs.release_due(3.0 + defaults.SYNC_SPACING - 0.01) == []
    assert syncs.release_due(3.0 + defaults.SYNC_SPACING) == [(APP, NB, waiting)]
    assert syncs.release_due(10.0) == []  # released once


def test_enough_hints_start_a_waiting_read_at_once(syncs):
    claim = syncs.begin(APP, NB, mark(syncs), 2.0)
    syncs.finish_round(claim, None, 3.0)
    early = [mark(syncs, 3.1) for _ in range(defaults.SYNC_BATCH)]
    assert early[:-1] == [None] * (defaults.SYNC_BATCH - 1)
    assert early[-1] == syncs.status(APP, NB).active  # the batch is full: enqueue it now
    assert syncs.release_due(10.0) == []


def test_a_pipeline_steps_callback_is_read_at_once_even_soon_after_a_read(syncs):
    claim = syncs.begin(APP, NB, mark(syncs), 2.0)
    syncs.finish_round(claim, None, 3.0)
    urgent = mark(syncs, 3.1, urgent=True)
    assert urgent is not None and urgent == syncs.status(APP, NB).active
    assert syncs.release_due(10.0) == []


def test_a_pipeline_steps_callback_during_a_read_makes_it_read_again_at_once(syncs):
    claim = syncs.begin(APP, NB, mark(syncs), 2.0)
    assert mark(syncs, 2.5, urgent=True) is None  # joins the running job
    assert syncs.finish_round(claim, None, 3.0) == claim.generation + 1


def test_a_few_hints_during_a_read_leave_the_next_read_waiting(syncs):
    job = mark(syncs)
    claim = syncs.begin(APP, NB, job, 2.0)
    assert mark(syncs) is None  # joins the running job
    assert syncs.finish_round(claim, None, 3.0) is DEFERRED
    status = syncs.status(APP, NB)
    assert not status.leased and status.active not in (None, job)
    assert syncs.release_due(3.0 + defaults.SYNC_SPACING) == [(APP, NB, status.active)]
    again = syncs.begin(APP, NB, status.active, 4.5)
    assert again.generation == claim.generation + 1
    assert syncs.finish_round(again, None, 5.0) is None
    assert syncs.dirty() == []


def test_many_hints_during_a_read_make_it_read_again_at_once(syncs):
    job = mark(syncs)
    claim = syncs.begin(APP, NB, job, 2.0)
    for _ in range(defaults.SYNC_BATCH):
        assert mark(syncs) is None  # joins the running job
    newer = syncs.finish_round(claim, None, 3.0)
    assert newer == claim.generation + defaults.SYNC_BATCH
    assert syncs.status(APP, NB).leased
    again = Claim(APP, NB, job, claim.fence, newer, None)
    assert syncs.finish_round(again, None, 4.0) is None
    assert syncs.dirty() == []


def test_take_over_replaces_a_waiting_job_too(syncs):
    claim = syncs.begin(APP, NB, mark(syncs), 2.0)
    syncs.finish_round(claim, None, 3.0)
    mark(syncs, 3.1)
    waiting = syncs.status(APP, NB).active
    successor = syncs.take_over(APP, NB, waiting, 40.0)
    assert successor not in (None, waiting)
    assert syncs.release_due(50.0) == []  # no longer waiting: the successor is enqueued


def test_one_sync_at_a_time(syncs):
    job = mark(syncs)
    first = syncs.begin(APP, NB, job, 2.0)
    assert syncs.begin(APP, NB, "other", 2.5) == Busy(job)
    syncs.finish_round(first, None, 3.0)
    assert isinstance(syncs.begin(APP, NB, "other", 4.0), Claim)


def test_a_sync_that_lost_its_lease_cannot_finish(syncs):
    job = mark(syncs)
    old = syncs.begin(APP, NB, job, 2.0)
    syncs.redis.delete(keys.sync_lease(APP, NB))  # expired
    new = syncs.begin(APP, NB, "successor", 3.0)
    assert new.fence > old.fence
    with pytest.raises(LeaseLost):
        syncs.finish_round(old, None, 4.0)
    assert not syncs.heartbeat(old)
    assert syncs.heartbeat(new)


def test_a_failure_to_be_retried_keeps_the_job_active(syncs):
    job = mark(syncs)
    claim = syncs.begin(APP, NB, job, 2.0)
    syncs.fail(APP, NB, job, fence=claim.fence, error="Unavailable: 500", final=False, now=3.0)
    status = syncs.status(APP, NB)
    assert (status.active, status.leased, status.dead) == (job, False, None)
    assert status.last_error == "Unavailable: 500"
    assert mark(syncs) is None  # hints join the retry
    assert status.dirty_since is not None


def test_the_last_failure_makes_a_dead_letter_and_frees_the_notebook(syncs):
    job = mark(syncs)
    claim = syncs.begin(APP, NB, job, 2.0)
    syncs.fail(APP, NB, job, fence=claim.fence, error="boom", final=True, now=3.0)
    status = syncs.status(APP, NB)
    assert (status.active, status.dead) == (None, job)
    assert status.dirty_since is not None
    fresh = mark(syncs)
    assert fresh is not None and fresh != job
    claim = syncs.begin(APP, NB, fresh, 4.0)
    syncs.finish_round(claim, None, 5.0)
    assert syncs.status(APP, NB).dead is None


def test_take_over_replaces_only_the_job_it_was_told_about(syncs):
    job = mark(syncs)
    assert syncs.take_over(APP, NB, "someone-else", 2.0) is None
    successor = syncs.take_over(APP, NB, job, 2.0)
    assert successor and successor != job
    assert syncs.status(APP, NB).active == successor
    syncs.begin(APP, NB, successor, 3.0)
    assert syncs.take_over(APP, NB, successor, 4.0) is None  # leased: alive


def test_hand_off_passes_a_dirty_notebook_to_a_new_job(syncs):
    job = mark(syncs)
    claim = syncs.begin(APP, NB, job, 2.0)
    successor = syncs.hand_off(claim, 3.0)
    status = syncs.status(APP, NB)
    assert (status.active, status.leased) == (successor, False)
    assert status.dirty_since is not None


def test_the_lease_keeper_renews_a_short_lease(text_redis):
    syncs = SyncState(text_redis, lease_seconds=0.3, ttl=3600)
    job = mark(syncs)
    claim = syncs.begin(APP, NB, job, 2.0)
    with LeaseKeeper(syncs, claim) as keeper:
        wait_until(lambda: text_redis.pttl(keys.sync_lease(APP, NB)) > 250, 1, "a renewal")
        text_redis.delete(keys.sync_lease(APP, NB))
        wait_until(keeper.lost.is_set, 2, "the keeper to notice the lost lease")
    assert not text_redis.exists(keys.sync_lease(APP, NB))
