"""Watched notebooks: which notebooks the scheduler polls, and how often it reads each of them
from Losant. Polls run in-process with a fake clock against the real sandbox; the syncs they
ask for run in-process too, so the sandbox's request counts are the cost."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

import pytest
from rq import Queue

from service import defaults
from service.queues import SYNC_QUEUE

HOUR = 3600.0
TICK = 10.0  # the scheduler's interval with the default settings: min(15 s, 300 s, 10 s)


@pytest.fixture(autouse=True)
def no_read_spacing(monkeypatch):
    """Reads of one notebook are spaced a real second apart; a simulated hour has no time."""
    monkeypatch.setattr(defaults, "SYNC_SPACING", 0.0)


def run_syncs(components) -> int:
    """Run the queued syncs in this process, as a worker would; returns how many."""
    queue = Queue(SYNC_QUEUE, connection=components.rq_redis)
    jobs = queue.get_jobs()
    for job in jobs:
        application_id, notebook_id = job.args
        components.sync.run(application_id, notebook_id, job_id=job.id)
        job.delete()
    return len(jobs)


def logs_calls(app, notebook_id: str) -> int:
    return app.stats(notebook_id)["requests"].get("logs", 0)


def pipeline_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "pipelines.yaml"
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_notebooks_of_rules_and_steps_are_watched_with_those_of_nbrelay_watch(
    make_components, sandbox_app, tmp_path
):
    ruled = sandbox_app.create_notebook("nightly-etl")["id"]
    step = sandbox_app.create_notebook("report")["id"]
    listed = sandbox_app.create_notebook("listed")["id"]
    unrelated = sandbox_app.create_notebook("unrelated")["id"]
    path = pipeline_file(
        tmp_path,
        f"""\
        notebooks:
          report: {{id: "{step}"}}
        channels:
          hook: {{kind: slack, url: "http://127.0.0.1:9/services/T1/B1/x"}}
        pipelines:
          daily:
            steps:
              report: {{notebook: report}}
        rules:
          etl-failed:
            notebook: nightly-etl
            statuses: errored
            actions: [{{notify: [hook]}}]
        """,
    )
    components = make_components(NBRELAY_PIPELINES=path, NBRELAY_WATCH=f"listed,{ruled}")
    now = time.time()
    assert components.reconciler.poll_watched(now) == 3
    polled = {job.args[1] for job in Queue(SYNC_QUEUE, connection=components.rq_redis).get_jobs()}
    assert polled == {ruled, step, listed} and unrelated not in polled
    assert run_syncs(components) == 3
    assert components.reconciler.poll_watched(now + TICK) == 0  # idle: read a moment ago


def test_a_notebook_read_for_any_reason_is_not_polled_again_within_the_interval(
    make_components, sandbox_app
):
    notebook_id = sandbox_app.create_notebook("etl")["id"]
    components = make_components(NBRELAY_WATCH="etl")
    reconciler = components.reconciler
    now = time.time()
    components.ingress.request_sync(sandbox_app.id, notebook_id, "callback", now=now)
    assert reconciler.poll_watched(now + 1) == 0  # its sync is queued: the poll would only join it
    assert run_syncs(components) == 1
    idle = defaults.POLL_INTERVAL
    assert reconciler.poll_watched(now + idle - 1) == 0  # the callback's read counts
    assert reconciler.poll_watched(now + idle) == 1


def test_polls_cost_what_the_readme_says_idle_and_busy(make_components, sandbox_app):
    """One simulated hour of scheduler passes at the default settings: an idle notebook is read
    3600 / NBRELAY_POLL_INTERVAL times, one with a run in flight 3600 /
    NBRELAY_POLL_BUSY_INTERVAL times (one `/logs` call per read)."""
    sandbox_app.sandbox.client.update_application(sandbox_app.id, maxAllowedRunMinutes=240)
    idle = sandbox_app.create_notebook("idle")["id"]
    busy = sandbox_app.create_notebook("busy")["id"]
    sandbox_app.set_behaviour(busy, status="completed", durationSeconds=3 * HOUR)
    running = sandbox_app.execute(busy)  # started in Losant, not through nbrelay
    sandbox_app.wait_for_status(busy, running, statuses=("inProgress",))
    components = make_components(NBRELAY_WATCH=f"{idle},{busy}")
    assert components.settings.poll_interval == defaults.POLL_INTERVAL == 300
    assert components.settings.poll_busy_interval == defaults.POLL_BUSY_INTERVAL == 10
    before = {n: logs_calls(sandbox_app, n) for n in (idle, busy)}
    start = time.time()
    try:
        for tick in range(int(HOUR / TICK)):
            components.reconciler.tick(start + tick * TICK)
            run_syncs(components)
        calls = {n: logs_calls(sandbox_app, n) - before[n] for n in (idle, busy)}
        assert calls[idle] == HOUR / defaults.POLL_INTERVAL == 12
        assert calls[busy] == HOUR / defaults.POLL_BUSY_INTERVAL == 360
        assert components.store.get(running).status == "inProgress"
    finally:
        sandbox_app.cancel(busy, running)


def test_a_notebook_stays_busy_for_the_window_after_its_run_ended(make_components, sandbox_app):
    notebook_id = sandbox_app.create_notebook("etl")["id"]
    sandbox_app.set_behaviour(notebook_id, status="errored", durationSeconds=0)
    execution_id = sandbox_app.execute(notebook_id)
    sandbox_app.wait_for_status(notebook_id, execution_id)
    components = make_components(NBRELAY_WATCH="etl")
    reconciler = components.reconciler
    now = time.time()
    assert reconciler.poll_watched(now) == 1
    run_syncs(components)
    ended = components.store.get(execution_id)
    assert ended.status == "errored"
    assert reconciler.poll_watched(now + 5) == 0  # busy, but read less than 10 s ago
    assert reconciler.poll_watched(now + 10) == 1  # ended a moment ago: busy
    run_syncs(components)
    assert reconciler.poll_watched(now + 20) == 1
    run_syncs(components)
    window = defaults.POLL_BUSY_WINDOW
    assert reconciler.poll_watched(now + window + 5) == 0  # ended over 300 s ago: idle again
    assert reconciler.poll_watched(now + 20 + defaults.POLL_INTERVAL) == 1
