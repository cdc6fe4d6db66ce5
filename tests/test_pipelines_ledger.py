"""The action ledger against a real Redis: one claim per key, leases, take-over after a dead
worker, postponement and dispatch of due actions."""

from __future__ import annotations

import threading

import pytest

from service import keys
from service.followups.actions.ledger import ActionState, Ledger


@pytest.fixture
def ledger(text_redis, clock) -> Ledger:
    return Ledger(text_redis, ttl=2 * 86400, lease=60.0, clock=clock)


def test_a_key_is_opened_once(ledger, text_redis):
    assert ledger.open("run:r1:step:b:attempt:1", "execute", {"notebook": "n"})
    assert not ledger.open("run:r1:step:b:attempt:1", "execute", {"notebook": "other"})
    record = ledger.get("run:r1:step:b:attempt:1")
    assert record.state is ActionState.PENDING
    assert record.spec == {"notebook": "n"}
    assert 0 < text_redis.ttl(keys.action("run:r1:step:b:attempt:1")) <= 2 * 86400


def test_concurrent_opens_claim_exactly_once(text_redis, clock):
    ledgers = [Ledger(text_redis, ttl=86400, clock=clock) for _ in range(20)]
    results: list[bool] = []
    barrier = threading.Barrier(len(ledgers))

    def open_it(ledger: Ledger) -> None:
        barrier.wait()
        results.append(ledger.open("exec:e1:errored:retry", "retry", {}))

    threads = [threading.Thread(target=open_it, args=(ledger,)) for ledger in ledgers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 19 + [True]


def test_concurrent_acquires_hand_out_one_lease(text_redis, clock):
    Ledger(text_redis, ttl=86400, clock=clock).open("k", "execute", {})
    leases = []
    barrier = threading.Barrier(10)

    def acquire() -> None:
        ledger = Ledger(text_redis, ttl=86400, clock=clock)
        barrier.wait()
        leases.append(ledger.acquire("k"))

    threads = [threading.Thread(target=acquire) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len([lease for lease in leases if lease is not None]) == 1


def test_lease_then_outcome(ledger):
    ledger.open("k", "execute", {"notebook": "n"})
    lease = ledger.acquire("k")
    assert lease is not None and lease.attempt == 1
    assert ledger.acquire("k") is None  # held by a live worker
    assert ledger.complete(lease, {"execution_id": "e1"})
    record = ledger.get("k")
    assert record.state is ActionState.DONE
    assert record.outcome == {"execution_id": "e1"}
    assert record.token is None
    assert ledger.acquire("k") is None  # finished
    assert not ledger.complete(lease, {"execution_id": "e2"})  # the lease is spent
    assert ledger.get("k").outcome == {"execution_id": "e1"}


def test_expired_lease_is_taken_over_and_the_old_holder_cannot_record(ledger, clock):
    ledger.open("k", "execute", {})
    dead = ledger.acquire("k")
    clock.now += 61
    survivor = ledger.acquire("k")
    assert survivor is not None and survivor.attempt == 2
    assert not ledger.complete(dead, {"execution_id": "late"})
    assert ledger.complete(survivor, {"execution_id": "e1"})
    assert ledger.get("k").outcome == {"execution_id": "e1"}


def test_postponed_action_comes_back_when_due(ledger, clock):
    ledger.open("k", "patch", {})
    lease = ledger.acquire("k")
    assert ledger.postpone(lease, 30, "Losant unavailable")
    record = ledger.get("k")
    assert record.state is ActionState.PENDING and record.error == "Losant unavailable"
    assert ledger.acquire("k") is None
    clock.now += 31
    again = ledger.acquire("k")
    assert again.attempt == 2
    assert ledger.fail(again, "notebook not found")
    record = ledger.get("k")
    assert record.state is ActionState.FAILED
    assert [h["state"] for h in record.history] == ["pending", "failed"]


def test_dispatch_hands_out_due_actions_once_per_lease(ledger, clock):
    ledger.open("now", "execute", {})  # its opener dispatches it; the ledger only backs it up
    ledger.open("later", "retry", {}, due_at=clock.now + 10)
    assert ledger.dispatch_due() == []
    clock.now += 10
    assert ledger.dispatch_due() == ["later"]
    assert ledger.dispatch_due() == []  # handed out; again only if nobody acquires it
    clock.now += 60
    assert sorted(ledger.dispatch_due()) == ["later", "now"]


def test_dispatch_forgets_finished_actions(ledger, clock):
    ledger.open("k", "notify", {})
    lease = ledger.acquire("k")
    ledger.complete(lease, {})
    clock.now += 1000
    assert ledger.dispatch_due() == []


def test_recent_actions_newest_first(ledger, clock):
    for index, kind in enumerate(["execute", "patch", "notify", "patch"]):
        clock.now += 1
        ledger.open(f"k{index}", kind, {})
    ledger.record_failure("k4", "patch", {}, "template failed")
    assert [r.key for r in ledger.recent(10)] == ["k4", "k3", "k2", "k1", "k0"]
    assert [r.key for r in ledger.recent(2, kind="patch")] == ["k4", "k3"]
