"""The `/logs` limit cap: the sandbox's switch, and syncs that discover a cap and say what it
hides (real sandbox, real stack)."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from service import defaults, keys
from service.events.logs_limit import LogsCaps
from service.events.unseen import UnseenExecutions
from service.followups.actions.dispatcher import ActionDispatcher
from service.followups.actions.ledger import ActionState, Ledger
from service.followups.actions.performer import Performer
from service.runtime.processes import wait_until
from tests.support.sandbox import SandboxProcess


def cap(guesses: dict) -> dict:
    return {name: guesses[name] for name in ("logsLimitCap", "logsAboveCap")}


def test_the_sandbox_cap_is_a_switch(sandbox_app, sandbox_guesses):
    notebook = sandbox_app.create_notebook()
    sandbox_app.set_behaviour(notebook["id"], status="completed", durationSeconds=0)
    for _ in range(3):
        sandbox_app.wait_for_status(notebook["id"], sandbox_app.execute(notebook["id"]))
    path = f"/applications/{sandbox_app.id}/notebooks/{notebook['id']}/logs"
    sandbox = sandbox_app.sandbox
    assert cap(sandbox.client.guesses()) == {"logsLimitCap": 1000, "logsAboveCap": "reject"}
    assert len(sandbox.call("GET", path, params={"limit": 1000})) == 3
    refused = sandbox.request("GET", path, params={"limit": 1001})
    assert refused.status_code == 400
    assert refused.json() == {"type": "Validation", "message": "query.limit: must be at most 1000"}

    switched = sandbox_guesses(logsLimitCap=2, logsAboveCap="silent")
    assert cap(switched) == {"logsLimitCap": 2, "logsAboveCap": "silent"}
    assert len(sandbox.call("GET", path, params={"limit": 50})) == 2
    sandbox_guesses(logsAboveCap="reject")
    refused = sandbox.request("GET", path, params={"limit": 3})
    assert refused.json() == {"type": "Validation", "message": "query.limit: must be at most 2"}
    bad = sandbox.request("PATCH", "/_sandbox/guesses", json={"logsAboveCap": "maybe"})
    assert bad.status_code == 400 and bad.json()["type"] == "Validation"
    assert sandbox.request("GET", "/_sandbox/logs-limit").status_code == 404


def test_the_sandbox_cap_is_a_command_line_option(tmp_path):
    options = ["--logs-limit-cap", "7", "--logs-above-cap", "silent"]
    process = SandboxProcess(tmp_path / "data", options=options).start()
    try:
        assert cap(process.client.guesses()) == {"logsLimitCap": 7, "logsAboveCap": "silent"}
    finally:
        process.stop()


@pytest.mark.parametrize("above_cap", ["silent", "reject"])
def test_a_sync_discovers_the_cap_and_warns_of_what_it_hides(
    stack_factory, sandbox_app, sandbox_guesses, above_cap
):
    notebook = sandbox_app.create_notebook()
    notebook_id = notebook["id"]
    sandbox_app.set_behaviour(notebook_id, status="completed", durationSeconds=0)
    stack = stack_factory()
    hint = stack.callback_url(notebook_id)

    first = sandbox_app.execute(notebook_id)
    sandbox_app.wait_for_status(notebook_id, first)
    assert requests.post(hint, json={}, timeout=10).status_code == 202
    stack.wait_for_status(first, "completed")
    listing = f"/api/executions?notebook={notebook_id}"
    assert stack.get(listing).json()["warnings"] == []

    # 50 runs nbrelay is not told about, then one sync: it can read only the newest 10
    started = [sandbox_app.execute(notebook_id) for _ in range(50)]
    for execution_id in started:
        sandbox_app.wait_for_status(notebook_id, execution_id)
    sandbox_guesses(logsLimitCap=10, logsAboveCap=above_cap)
    assert requests.post(hint, json={}, timeout=10).status_code == 202
    warning = f"up to 40 executions of notebook {notebook_id} may not have been seen"
    wait_until(lambda: stack.get(listing).json()["warnings"] == [warning], 30, "the warning")
    for execution_id in started[-10:]:
        assert stack.execution(execution_id)["status"] == "completed"
    assert stack.execution(started[0]) is None
    assert re.search(r"^nbrelay_unseen_executions_total 40\.0$", stack.metrics(), re.M)
    listed = stack.run_cli("executions", "--notebook", notebook_id)
    assert listed.returncode == 0 and f"warning: {warning}" in listed.stderr
    assert any(warning in worker.log() for worker in stack.workers)

    components = stack.components()
    try:
        assert components.redis.get(keys.logs_limit_cap(sandbox_app.id)) == "10"
        assert 0 < components.redis.ttl(keys.logs_limit_cap(sandbox_app.id)) <= 24 * 3600
        # the next sync asks for the cap at once: one /logs request, and no new warning
        last = sandbox_app.execute(notebook_id)
        wait_until(
            lambda: sandbox_app.logs(notebook_id, limit=1)[0]["status"] == "completed",
            30,
            "the run to complete",
        )
        before = sandbox_app.stats(notebook_id)["requests"]["logs"]
        assert requests.post(hint, json={}, timeout=10).status_code == 202
        stack.wait_for_status(last, "completed")
        wait_until(
            lambda: not components.syncs.status(sandbox_app.id, notebook_id).dirty_since,
            10,
            "the sync to finish",
        )
    finally:
        components.close()
    assert sandbox_app.stats(notebook_id)["requests"]["logs"] - before == 1
    assert stack.get(listing).json()["warnings"] == [warning]


def test_a_run_unfinished_at_the_cursor_is_not_taken_for_a_cap(
    stack_factory, sandbox_app, sandbox_guesses
):
    """The cursor rests on a run still running; under a `since` that compares end times that
    run is not listed, so a page with a newer run only is not a page cut short by a cap."""
    sandbox_app.sandbox.client.update_application(sandbox_app.id, parallelRuns=2)
    notebook_id = sandbox_app.create_notebook()["id"]
    stack = stack_factory()
    hint = stack.callback_url(notebook_id)
    listing = f"/api/executions?notebook={notebook_id}"
    sandbox_app.set_behaviour(notebook_id, status="completed", durationSeconds=8)
    long_run = sandbox_app.execute(notebook_id)
    sandbox_app.wait_for_status(notebook_id, long_run, ["inProgress"])
    components = stack.components()

    def synced() -> None:
        assert requests.post(hint, json={}, timeout=10).status_code == 202
        wait_until(
            lambda: not components.syncs.status(sandbox_app.id, notebook_id).dirty_since,
            20,
            "the sync to finish",
        )

    try:
        synced()  # the cursor is now the long run's queue time
        assert stack.execution(long_run)["status"] == "inProgress"
        sandbox_guesses(logsSince="ended")
        sandbox_app.set_behaviour(notebook_id, status="completed", durationSeconds=0)
        short_run = sandbox_app.execute(notebook_id)
        sandbox_app.wait_for_status(notebook_id, short_run)
        synced()
        stack.wait_for_status(short_run, "completed")
        assert components.redis.get(keys.logs_limit_cap(sandbox_app.id)) is None
        sandbox_app.wait_for_status(notebook_id, long_run, timeout=30)
        synced()
        stack.wait_for_status(long_run, "completed")
        assert components.redis.get(keys.logs_limit_cap(sandbox_app.id)) is None
    finally:
        components.close()
    assert stack.get(listing).json()["warnings"] == []


def test_a_gap_counted_again_by_a_redone_sync_is_not_counted_twice(text_redis):
    unseen = UnseenExecutions(text_redis, ttl=3600)
    app, notebook = "a" * 24, "b" * 24
    unseen.add(app, notebook, 40, gap=1_000)
    unseen.add(app, notebook, 40, gap=1_000)  # the same sync, done again after its worker died
    assert unseen.count(app, notebook) == 40
    unseen.add(app, notebook, 42, gap=1_000)  # two more finished in the same gap meanwhile
    unseen.add(app, notebook, 5, gap=9_000)  # a later gap
    assert unseen.count(app, notebook) == 47
    assert unseen.warnings(app, notebook, "etl") == [
        "up to 47 executions of notebook etl may not have been seen"
    ]
    assert unseen.all_warnings({}) == [
        f"up to 47 executions of notebook {notebook} may not have been seen"
    ]


def start_until_accepted(stack, notebook_id: str, deferrals: list[dict]) -> str:
    """Start a run through the API as a user would: a 429 is tried again after its
    Retry-After."""
    url = f"{stack.url}/api/notebooks/{notebook_id}/executions"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        response = requests.post(url, json={}, headers=dict(stack.api.headers), timeout=30)
        if response.status_code == 201:
            return response.json()["executionId"]
        assert response.status_code == 429, response.text
        deferrals.append({**response.json(), "retryAfter": response.headers["Retry-After"]})
        time.sleep(int(response.headers["Retry-After"]))
    raise AssertionError("the start was deferred for four minutes")


@pytest.mark.parametrize("above_cap", ["silent", "reject"])
def test_starts_beyond_the_cap_are_deferred_and_no_run_is_lost(
    stack_factory, sandbox_app, sandbox_guesses, above_cap
):
    """50 starts of one notebook under a /logs cap of 10: nbrelay never waits for more runs
    than one page shows, so every run is read with its final status, each executed once."""
    notebook_id = sandbox_app.create_notebook()["id"]
    # runs long enough that ten of them are still going when the eleventh start comes
    sandbox_app.set_behaviour(notebook_id, status="completed", durationSeconds=2)
    sandbox_guesses(logsLimitCap=10, logsAboveCap=above_cap)
    stack = stack_factory()
    components = stack.components()
    try:
        LogsCaps(components.redis).remember(sandbox_app.id, 10, "rejected")
        deferrals: list[dict] = []
        with ThreadPoolExecutor(max_workers=50) as pool:
            started = list(
                pool.map(lambda _: start_until_accepted(stack, notebook_id, deferrals), range(50))
            )
        assert len(set(started)) == 50
        for execution_id in started:
            stack.wait_for_status(execution_id, "completed", timeout=120)
        assert components.store.pending_count_since(sandbox_app.id, notebook_id, 0) == 0
    finally:
        components.close()
    assert sandbox_app.stats(notebook_id)["requests"]["execute"] == 50
    full = "already has 10 runs nbrelay is waiting for, the most one /logs page can show (10)"
    assert any(full in d["message"] for d in deferrals)
    assert {(d["type"], d["retryAfter"]) for d in deferrals} == {("StartDeferred", "5")}


def test_a_deferred_execute_action_is_tried_again_without_counting_an_attempt(
    make_components, sandbox_app, clock
):
    """An execute action that finds its notebook full under the cap sent nothing to Losant: it
    comes back after the Retry-After, as often as needed, without nearing ACTION_MAX_ATTEMPTS
    and without looking in `/logs` for a run an earlier attempt might have started."""
    components = make_components(
        NBRELAY_PUBLIC_URL="http://relay.example.com", NBRELAY_SECRET="s" * 32
    )
    notebook_id = sandbox_app.create_notebook()["id"]
    sandbox_app.set_behaviour(notebook_id, status="completed", durationSeconds=0)
    LogsCaps(components.redis).remember(sandbox_app.id, 1, "rejected")
    first = components.starter.start(notebook_id, requested_by="test")

    def start(notebook: str, **options) -> str:
        return components.starter.start(notebook, **options).execution_id

    ledger = Ledger(components.redis, ttl=86400, clock=clock)
    performer = Performer(
        ledger, lambda: components.losant, sandbox_app.id, start, LogsCaps(components.redis)
    )
    dispatcher = ActionDispatcher(
        ledger, {"execute": performer.execute}, lambda kind, key, starts_run: None, clock=clock
    )
    ledger.open("k", "execute", {"notebook": notebook_id, "requested_by": "test"})
    for _ in range(defaults.ACTION_MAX_ATTEMPTS + 2):
        assert dispatcher.perform("k").outcome == "deferred"
        record = ledger.get("k")
        assert record.state is ActionState.PENDING and record.attempts == 0
        assert "already has 1 runs nbrelay is waiting for" in record.error
        assert record.due_at == clock.now + defaults.START_DEFER_RETRY
        assert dispatcher.perform("k").outcome == "skipped"
        clock.now += defaults.START_DEFER_RETRY
    components.redis.delete(keys.logs_limit_cap(sandbox_app.id))  # room again
    performed = dispatcher.perform("k")
    assert performed.outcome == "done", performed
    assert performed.record.attempts == 1
    assert performed.result["execution_id"] not in (None, first.execution_id)
    stats = sandbox_app.stats(notebook_id)["requests"]
    assert stats["execute"] == 2 and stats.get("logs", 0) == 0


def test_nbrelay_run_says_in_one_line_that_the_start_is_deferred(stack_factory, sandbox_app):
    notebook = sandbox_app.create_notebook()
    stack = stack_factory()
    components = stack.components()
    try:
        LogsCaps(components.redis).remember(sandbox_app.id, 2, "rejected")
        for n in range(2):  # two runs nbrelay waits for, as one /logs page holds
            components.store.record_request(
                application_id=sandbox_app.id,
                notebook_id=notebook["id"],
                execution_id=f"{n:024x}",
                requested_by="test",
                requested_at=time.time(),
                first_check_at=time.time() + 3600,
            )
        deferred = stack.run_cli("run", notebook["id"])
    finally:
        components.close()
    assert deferred.returncode == 1
    assert deferred.stderr == (
        f"nbrelay: error: notebook {notebook['name']} already has 2 runs nbrelay is waiting for, "
        "the most one /logs page can show (2); try again shortly\n"
    )
    assert sandbox_app.stats(notebook["id"])["requests"].get("execute", 0) == 0
