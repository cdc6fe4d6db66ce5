"""nbrelay under each plausible Losant: the sandbox's guesses switched (`sandbox.guesses`), real
gunicorn, worker and scheduler processes against the real sandbox."""

from __future__ import annotations

import pytest

from sandbox import guesses
from service.runtime.processes import wait_until
from tests.support.sandbox import TERMINAL_STATUSES


def scripted(app, status: str, duration: float = 0.2) -> str:
    notebook_id = app.create_notebook()["id"]
    app.set_behaviour(notebook_id, status=status, durationSeconds=duration)
    return notebook_id


def start(stack, notebook_id: str) -> str:
    started = stack.post(f"/api/notebooks/{notebook_id}/executions", json={})
    assert started.status_code == 201, started.text
    return started.json()["executionId"]


def test_every_callback_body_leaves_the_final_status_recorded(
    stack_factory, sandbox_app, sandbox_guesses
):
    stack = stack_factory()
    for kind in guesses.CALLBACK_BODIES:
        sandbox_guesses(callbackBody=kind)
        for status in ("completed", "errored"):
            notebook_id = scripted(sandbox_app, status)
            execution_id = start(stack, notebook_id)
            wait_until(
                lambda n=notebook_id: sandbox_app.stats(n)["callbacksSent"] == 1,
                20,
                f"the {kind} callback",
            )
            record = stack.wait_for_status(execution_id, status, timeout=20)
            assert record["losant"]["status"] == status, kind


def test_without_callback_retries_a_lost_callback_is_made_up_for(
    stack_factory, sandbox_app, sandbox_guesses
):
    """The callback's only attempt finds nbrelay's web down; the scheduler's reconciler still
    records the run's final status. The web is gone before the run starts (it is started in
    process), so the callback cannot reach it whatever the timing."""
    sandbox_guesses(callbackAttempts=1)
    stack = stack_factory()
    notebook_id = scripted(sandbox_app, "timeout")
    stack.web.kill()
    components = stack.components()
    try:
        execution_id = components.starter.start(notebook_id, requested_by="test").execution_id
        wait_until(lambda: sandbox_app.stats(notebook_id)["callbacksFailed"] == 1, 20, "a give-up")
        record = wait_until(
            lambda: (r := components.store.get(execution_id)) and r.status == "timeout" and r,
            20,
            "the reconciler to record the run",
        )
        assert record.losant["status"] == "timeout"
    finally:
        components.close()


@pytest.mark.parametrize("meaning", guesses.LOGS_SINCE)
def test_every_meaning_of_since_lets_the_sync_record_every_execution(
    stack_factory, sandbox_app, sandbox_guesses, meaning
):
    """Runs nbrelay starts and runs started elsewhere (a watched notebook), some queued behind a
    long one, some ending while others are still running: all end up stored, final."""
    sandbox_guesses(logsSince=meaning)
    sandbox_app.sandbox.client.update_application(sandbox_app.id, parallelRuns=2)
    notebook = sandbox_app.create_notebook(f"watched-{meaning}")
    notebook_id = notebook["id"]
    stack = stack_factory(env={"NBRELAY_WATCH": notebook["name"], "NBRELAY_POLL_INTERVAL": "0.5"})
    sandbox_app.set_behaviour(notebook_id, status="completed", durationSeconds=4)
    long_ones = [sandbox_app.execute(notebook_id), start(stack, notebook_id)]
    sandbox_app.set_behaviour(notebook_id, status="errored", durationSeconds=0.1)
    short_ones = [start(stack, notebook_id), sandbox_app.execute(notebook_id)]
    sandbox_app.set_behaviour(notebook_id, status="completed", durationSeconds=0.1)
    later = [sandbox_app.execute(notebook_id), start(stack, notebook_id)]
    executions = long_ones + short_ones + later
    for execution_id in executions:
        sandbox_app.wait_for_status(notebook_id, execution_id, timeout=60)
    final = {r["id"]: r["status"] for r in sandbox_app.logs(notebook_id)}
    assert set(final) == set(executions) and set(final.values()) <= TERMINAL_STATUSES
    for execution_id in executions:
        record = stack.wait_for_status(execution_id, final[execution_id], timeout=30)
        assert record["losant"]["status"] == final[execution_id], meaning
