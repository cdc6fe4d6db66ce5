"""Pipeline runs, rules, actions and alerts end to end in one process, against the sandbox,
a real Redis and real receivers."""

from __future__ import annotations

import json
import logging
import re
import time

import pytest
from prometheus_client import REGISTRY

from sandbox import guesses
from service import defaults, keys
from service.errors import UsageProblem
from service.events.logs_limit import LogsCaps
from service.followups.actions.ledger import ActionState
from service.followups.actions.performer import PATCHABLE, Performer, spec_marker
from service.followups.messages import FailureClass
from service.followups.pipelines.runs import RunStatus, RunStore, StepState, execution_started
from tests.support.clock import ManualClock
from tests.support.followups import TTL, Harness
from tests.support.http_server import Reply, ScriptedServer
from tests.support.slow_proxy import SlowProxy

DIAMOND = """\
pipelines:
  diamond:
    params: {day: "2024-05-01"}
    steps:
      a:
        notebook: A
        context: {day: "{{ params.day }}", rows: 7}
      b:
        notebook: B
        after: a
        context:
          from_a: "{{ steps.a.id }}"
          rows: "{{ steps.a.context.rows + 1 }}"
          log: "{{ steps.a.outputInfo['result.log'].url }}"
      c:
        notebook: C
        after: a
        context: {queued: "{{ steps.a.runQueuedAt }}", status: "{{ steps.a.status }}"}
      d:
        notebook: D
        after: [b, c]
        context: {b: "{{ steps.b.id }}", c: "{{ steps.c.id }}"}
"""


def test_diamond_completes_with_contexts_from_upstream(harness):
    h = harness(DIAMOND)
    ids = {name: h.notebook(name) for name in "ABCD"}
    h.registry.refresh()
    run = h.followups.start_run("diamond", {}, "test")
    done = h.run_until(
        lambda: h.followups.run(run.id).status is not RunStatus.RUNNING and h.followups.run(run.id),
        "the run to end",
    )
    assert done.status is RunStatus.COMPLETED
    (a,), (b,), (c,), (d,) = (h.executions(ids[n]) for n in "ABCD")
    assert a["context"]["day"] == "2024-05-01"
    nonce = h.ledger.get(f"run:{run.id}:a:1").spec["nonce"]
    assert a["context"]["nbrelay"] == {"run": run.id, "step": "a", "attempt": 1, "nonce": nonce}
    assert len(nonce) == 22  # 16 random bytes
    assert b["context"]["from_a"] == a["id"] and b["context"]["rows"] == 8
    assert b["context"]["log"] == a["outputInfo"]["result.log"]["url"]
    assert c["context"] == {
        "queued": a["runQueuedAt"], "status": "completed",
        "nbrelay": {
            "run": run.id, "step": "c", "attempt": 1,
            "nonce": h.ledger.get(f"run:{run.id}:c:1").spec["nonce"],
        },
    }  # fmt: skip
    assert d["context"]["b"] == b["id"] and d["context"]["c"] == c["id"]
    assert d["runQueuedAt"] >= max(b["notebookCompletedAt"], c["notebookCompletedAt"])
    for name in "ABCD":
        assert h.app.stats(ids[name])["requests"]["execute"] == 1
    assert [e["id"] for e in done.steps["d"].executions] == [d["id"]]
    # only the first step was new work (the starts queue); the others finished the run
    assert h.starts == [f"run:{run.id}:a:1"]


def test_a_step_that_errors_is_retried_with_the_same_context(harness):
    h = harness(
        """\
        pipelines:
          p:
            steps:
              a: {notebook: A, context: {x: 1}, retry: {max_attempts: 2, backoff: [0.3s]}}
              b: {notebook: B, after: a}
        """
    )
    a, b = h.notebook("A", status="errored"), h.notebook("B")
    h.registry.refresh()
    run = h.followups.start_run("p", {}, "test")
    h.run_until(lambda: len(h.executions(a)) == 1 and h.seen, "the first attempt to end")
    h.run_until(lambda: h.followups.run(run.id).steps["a"].attempt == 2, "a retry")
    h.app.set_behaviour(a, status="completed", durationSeconds=0.1)
    final = h.run_until(lambda: (r := h.followups.run(run.id)).finished_at and r, "the run to end")
    assert final.status is RunStatus.COMPLETED
    first, second = h.executions(a)
    assert first["status"] == "errored" and second["status"] == "completed"
    assert first["context"]["x"] == second["context"]["x"] == 1
    nonce = h.ledger.get(f"run:{run.id}:a:2").spec["nonce"]
    assert second["context"]["nbrelay"] == {
        "run": run.id,
        "step": "a",
        "attempt": 2,
        "nonce": nonce,
    }
    assert nonce != first["context"]["nbrelay"]["nonce"]
    assert [(e["attempt"], e["status"]) for e in final.steps["a"].executions] == [
        (1, "errored"), (2, "completed"),
    ]  # fmt: skip
    assert len(h.executions(b)) == 1


def test_without_retry_the_run_fails_and_dependants_follow_the_policy(harness):
    h = harness(
        """\
        pipelines:
          p:
            steps:
              a: {notebook: A}
              b: {notebook: B, after: a, on_failure: skip}
              c: {notebook: C, after: b}
              d: {notebook: D, after: a}
        """
    )
    h.notebook("A")
    h.notebook("B", status="timeout")
    c = h.notebook("C")
    h.notebook("D")
    h.registry.refresh()
    run = h.followups.start_run("p", {}, "test")
    final = h.run_until(lambda: (r := h.followups.run(run.id)).finished_at and r, "the run to end")
    assert final.status is RunStatus.FAILED
    assert final.steps["b"].state is StepState.FAILED
    assert "ended timeout" in final.steps["b"].reason
    assert final.steps["c"].state is StepState.SKIPPED and h.executions(c) == []
    assert final.steps["d"].state is StepState.COMPLETED


def test_a_worker_that_died_after_executing_is_not_repeated(harness):
    h = harness(DIAMOND, action_lease=0.5)
    ids = {name: h.notebook(name) for name in "ABCD"}
    h.registry.refresh()
    h.held.append("run:")
    run = h.followups.start_run("diamond", {}, "test")
    h.held[0] = f"run:{run.id}:b:"
    h.run_until(lambda: any(k.startswith(h.held[0]) for _, k in h.queue), "b to be opened")
    # A worker takes b's action, starts the execution, and dies before recording it.
    kind, key = next(item for item in h.queue if item[1].startswith(h.held[0]))
    h.queue.remove((kind, key))
    h.held.clear()
    h.start_and_die(key)
    final = h.run_until(lambda: (r := h.followups.run(run.id)).finished_at and r, "the run to end")
    assert final.status is RunStatus.COMPLETED
    # The lease runs out; the next attempt finds the execution in Losant instead of starting one.
    record = h.run_until(
        lambda: (r := h.followups.action(key)).state is ActionState.DONE and r, "recovery"
    )
    assert record.attempts == 2 and record.outcome["found_in_losant"] is True
    for name in "ABCD":
        assert h.app.stats(ids[name])["requests"]["execute"] == 1, name


def test_rule_retry_execute_and_patch(harness):
    h = harness(
        """\
        notebooks:
          etl: {name: ETL}
        rules:
          retry-etl:
            notebook: etl
            statuses: [errored]
            actions:
              - retry: {max_attempts: 3, backoff: [0.2s]}
          after-etl:
            notebook: etl
            statuses: completed
            when: execution.context.day == '2024-05-01'
            actions:
              - execute: {notebook: Report, context: {source: "{{ execution.id }}"}}
              - patch:
                  notebook: Report
                  set: {description: "fed by {{ execution.id }}", imageVersion: v3}
                  inputs:
                    data.csv: {start: -3600000, end: "{{ 0 }}"}
        """
    )
    etl = h.notebook("ETL", status="errored")
    report = h.app.create_notebook(
        "Report", description="old", imageVersion="v2",
        inputs=[{"inputType": "deviceData", "fileName": "data.csv", "start": -86400000, "end": 0}],
    )["id"]  # fmt: skip
    h.app.set_behaviour(report, status="completed", durationSeconds=0.1)
    h.notebooks.add(report)
    h.registry.refresh()
    first = h.app.execute(etl, templateContext='{"day": "2024-05-01"}')
    h.run_until(lambda: len(h.executions(etl)) == 3, "two retries")
    h.run_until(lambda: not h.queue and h.ledger.dispatch_due() == [], "quiet")
    attempts = h.executions(etl)
    assert [e["context"].get("nbrelay", {}).get("attempt") for e in attempts] == [None, 2, 3]
    assert {e["context"]["day"] for e in attempts} == {"2024-05-01"}
    assert attempts[1]["context"]["nbrelay"]["retry_of"] == first
    assert h.executions(report) == []  # no completion yet: nothing to execute or patch

    h.app.set_behaviour(etl, status="completed", durationSeconds=0.1)
    done = h.app.execute(etl, templateContext='{"day": "2024-05-01"}')
    h.run_until(lambda: len(h.executions(report)) == 1, "the report run")
    (run,) = h.executions(report)
    assert run["context"]["source"] == done
    key = f"rule:after-etl:0:{done}:completed"
    nonce = h.ledger.get(key).spec["nonce"]
    assert run["context"]["nbrelay"] == {"action": key, "nonce": nonce}
    assert "nonce" not in h.followups.action(key).describe()["spec"]
    patch = h.followups.action(f"rule:after-etl:1:{done}:completed")
    assert patch.state is ActionState.DONE
    assert patch.outcome["before"]["description"] == "old"
    assert patch.outcome["after"] == {
        "description": f"fed by {done}",
        "imageVersion": "v3",
        "inputs": [
            {"inputType": "deviceData", "fileName": "data.csv", "start": -3600000, "end": 0}
        ],
    }
    assert patch.outcome["before"]["imageVersion"] == "v2"

    undo = h.followups.undo_patch(patch.key)
    assert h.followups.undo_patch(patch.key) == undo  # asked twice, done once
    h.drain()
    restored = h.client.get_notebook(h.app.id, report)
    assert (restored.description, restored.image_version) == ("old", "v2")
    assert [i["start"] for i in restored.model_dump(by_alias=True)["inputs"]] == [-86400000]
    assert h.followups.action(undo).outcome["before"]["description"] == f"fed by {done}"
    with pytest.raises(UsageProblem, match="not a patch that was applied"):
        h.followups.undo_patch(f"rule:after-etl:0:{done}:completed")


def test_alerts_are_grouped_and_resolved_and_permanent_failures_recorded(harness, http_server):
    broken = ScriptedServer(default=Reply(404, "no_service")).start()
    h = harness(
        f"""\
        channels:
          slack: {{kind: slack, url: "{http_server.url}/services/T/B/secret"}}
          broken: {{kind: slack, url: "{broken.url}/services/T/B/revoked"}}
        alerts: {{group_wait: 0.5s, repeat_interval: 1h}}
        rules:
          etl-failed:
            notebook: ETL
            statuses: [errored]
            actions: [{{notify: [slack, broken]}}]
        """
    )
    try:
        etl = h.notebook("ETL", status="errored")
        h.registry.refresh()
        for _ in range(3):
            h.app.execute(etl)
        h.run_until(lambda: len(h.seen) == 3, "three failures")
        h.run_until(lambda: http_server.requests and broken.requests, "the alert")
        h.run_until(lambda: not h.queue, "deliveries")
        (firing,) = http_server.requests
        assert "3 failures in a row" in firing.json()["text"]
        assert len(broken.requests) == 1  # a 404 is permanent: not retried
        (failure,) = h.followups.failed_deliveries()
        assert failure["channel"] == "broken" and failure["attempts"] == 1
        assert failure["error"] == f"slack: HTTP 404 from {broken.url[7:]}: no_service"
        h.app.set_behaviour(etl, status="completed", durationSeconds=0.1)
        h.app.execute(etl)
        h.run_until(lambda: len(http_server.requests) == 2, "the resolved message")
        assert http_server.requests[1].json()["text"].startswith(":large_green_circle: *Resolved")
        h.run_until(lambda: len(broken.requests) == 2 and not h.queue, "the second 404")
        assert len(h.followups.failed_deliveries()) == 2
    finally:
        broken.stop()


def test_paging_tools_keep_an_alert_on_one_incident(harness, http_server):
    """PagerDuty and Opsgenie get the alert id as dedup key and alias: the trigger and the
    resolution of one alert name the same incident."""
    http_server.default = Reply(202, {})
    h = harness(
        f"""\
        channels:
          pager: {{kind: pagerduty, routing_key: {"K" * 32}, url: "{http_server.url}/v2/enqueue"}}
          genie:
            kind: opsgenie
            api_key: 5f2a7c1e-8b3d-4e6f-9a0b-c1d2e3f4a5b6
            url: "{http_server.url}"
        alerts: {{group_wait: 0.1s, repeat_interval: 1h}}
        rules:
          etl-failed:
            notebook: ETL
            statuses: [errored]
            actions: [{{notify: [pager, genie]}}]
        """
    )
    etl = h.notebook("ETL", status="errored")
    h.registry.refresh()
    h.app.execute(etl)
    h.run_until(lambda: len(http_server.requests) == 2 and not h.queue, "the alert")
    alert_id = f"{h.app.id}:{etl}:errored"
    sent = {r.path: r for r in http_server.requests}
    trigger = sent["/v2/enqueue"].json()
    assert trigger["event_action"] == "trigger" and trigger["dedup_key"] == alert_id
    assert trigger["payload"]["group"] == h.app.id and trigger["payload"]["class"] == "errored"
    assert sent["/v2/alerts"].json()["alias"] == alert_id
    h.app.set_behaviour(etl, status="completed", durationSeconds=0.1)
    h.app.execute(etl)
    h.run_until(lambda: len(http_server.requests) == 4 and not h.queue, "the resolution")
    resolved = {r.path: r for r in http_server.requests[2:]}
    assert resolved["/v2/enqueue"].json()["event_action"] == "resolve"
    assert resolved["/v2/enqueue"].json()["dedup_key"] == alert_id
    assert f"/v2/alerts/{alert_id.replace(':', '%3A')}/close" in resolved


@pytest.mark.parametrize(("sent", "changed_since"), [(True, False), (True, True), (False, True)])
def test_a_patch_whose_worker_died_is_applied_once(harness, sent, changed_since):
    """Found by the fault soak: a patch whose worker died before sending it was skipped when the
    fields had changed since (another patch), as though it had been sent."""
    clock = ManualClock(time.time())
    h = harness(
        """\
        rules:
          after-etl:
            notebook: ETL
            statuses: completed
            actions:
              - patch: {notebook: Report, set: {description: "fed by {{ execution.id }}"}}
        """,
        clock=clock,
    )
    etl, report = h.notebook("ETL"), h.notebook("Report")
    h.registry.refresh()
    done = h.app.execute(etl)
    key = f"rule:after-etl:0:{done}:completed"
    h.held.append(key)  # a worker takes it and dies, after sending the PATCH or before
    h.run_until(lambda: h.ledger.get(key) is not None, "the patch action")
    lease = h.ledger.acquire(key)
    assert lease is not None
    if sent:
        Performer(h.ledger, lambda: h.client, h.app.id, h.start, LogsCaps(h.redis)).patch(lease)
    else:  # it read the notebook and noted its values, then died before the PATCH
        found = h.client.get_notebook(h.app.id, report)
        current = found.model_dump(mode="json", by_alias=True, exclude_none=True)
        h.ledger.checkpoint(lease, {"before": {k: current[k] for k in PATCHABLE if k in current}})
    ours = {"description": f"fed by {done}"}
    newer = {"description": "set by someone else since"}
    if changed_since:  # a newer change, which the patch taken over must not undo
        h.client.patch_notebook(h.app.id, report, newer)
    clock.now += 61  # its lease runs out
    h.held.clear()
    h.run_until(lambda: h.ledger.get(key).state is ActionState.DONE, "the patch taken over")
    assert h.ledger.get(key).attempts == 2
    applied = [{"body": ours, "applied": 1}] + ([{"body": newer, "applied": 1}] * changed_since)
    if not sent:  # ours went out last, once
        applied.reverse()
    assert h.app.stats(report)["patches"] == applied
    final = h.client.get_notebook(h.app.id, report).description
    assert final == (newer if sent and changed_since else ours)["description"]


def test_missing_callback_alert(harness, monkeypatch, caplog):
    monkeypatch.setattr(defaults, "MISSING_CALLBACK_GRACE", 0.0)
    h = harness(
        """\
        channels:
          audit: {kind: log}
        alerts: {group_wait: 0s}
        rules:
          silent:
            notebook: ETL
            statuses: [missing_callback]
            actions: [{notify: [audit]}]
        """
    )
    etl = h.notebook("ETL")
    h.registry.refresh()
    execution_id = h.app.execute(etl)
    h.seen.add(execution_id)  # handed to on_terminal below, with what the store knows of it
    h.app.wait_for_status(etl, execution_id, ["completed"])
    record = h.client.logs(h.app.id, etl, limit=1)[0]
    record = record.model_dump(mode="json", by_alias=True, exclude_none=True)
    started_by_us = {"requested_by": "cli", "callbacks": "0"}
    with caplog.at_level(logging.WARNING, logger="nbrelay.alerts"):
        h.terminal(record, etl, started_by_us)
        h.run_until(lambda: "sent no completion callback" in caplog.text, "the alert")
    alert = h.alerts.get(h.app.id, etl, FailureClass.MISSING_CALLBACK)
    assert alert.state.value == "firing"  # the execution that missed it does not resolve it
    second = h.app.execute(etl)
    h.seen.add(second)
    h.app.wait_for_status(etl, second, ["completed"])
    record = h.client.logs(h.app.id, etl, limit=1)[0]
    record = record.model_dump(mode="json", by_alias=True, exclude_none=True)
    h.terminal(record, etl, {"requested_by": "cli", "callbacks": "1"})
    assert h.alerts.get(h.app.id, etl, FailureClass.MISSING_CALLBACK).state.value == "resolved"


def test_a_run_stuck_past_its_deadline_alerts_once_and_resolves_when_it_ends(harness, http_server):
    clock = ManualClock(time.time())
    text = f"""\
        channels:
          slack: {{kind: slack, url: "{http_server.url}/services/T/B/secret"}}
        alerts:
          group_wait: 0s
          repeat_interval: 1h
          overdue: {{queue_slack: 1m, output_slack: 30s}}
        rules:
          stuck:
            notebook: ETL
            statuses: [overdue]
            actions: [{{notify: [slack]}}]
          failed:
            notebook: Report
            statuses: [errored]
            actions: [{{notify: [slack]}}]
        """
    h = harness(text, clock=clock)
    etl = h.notebook("ETL", durationSeconds=600)
    report = h.notebook("Report", durationSeconds=600)  # stuck too, but no rule on overdue
    h.registry.refresh()
    stuck, other = h.app.execute(etl), h.app.execute(report)

    def running(execution_id: str) -> bool:
        record = h.store.get(execution_id)
        return record is not None and record.status == "inProgress"

    h.run_until(lambda: running(stuck) and running(other), "both runs in progress")
    minutes = h.store.get(stuck).losant["maxAllowedRunMinutes"]
    clock.now += minutes * 60 + 90 - 5  # 5 s inside the deadline
    h.pump()
    assert not http_server.requests
    assert h.alerts.get(h.app.id, etl, FailureClass.OVERDUE) is None
    clock.now += 10
    h.run_until(lambda: http_server.requests, "the overdue alert")
    firing = http_server.requests[0].json()["text"]
    assert re.match(r":red_circle: \*Notebook “ETL” has a run stuck inProgress for \d+ min", firing)
    assert f"`{stuck}`" in firing and "1 run stuck" in firing
    for _ in range(3):  # later passes, and another scheduler, find it handled
        clock.now += 60
        h.pump()
    second = harness(text, clock=clock)
    second.followups.tick()
    assert not second.queue and len(http_server.requests) == 1
    clock.now += 3600  # repeat_interval: sent again while it is stuck
    h.run_until(lambda: len(http_server.requests) == 2, "the repeated alert")
    assert "has a run stuck inProgress for 1 h" in http_server.requests[1].json()["text"]
    assert h.alerts.get(h.app.id, report, FailureClass.OVERDUE) is None

    h.app.set_behaviour(etl, status="completed", durationSeconds=0.1)
    completed = h.app.execute(etl)
    h.run_until(lambda: completed in h.seen, "another run of ETL completed")
    alert = h.alerts.get(h.app.id, etl, FailureClass.OVERDUE)
    assert alert.state.value == "firing" and alert.stuck == [stuck]  # not resolved by another run
    h.app.cancel(etl, stuck)
    h.run_until(lambda: len(http_server.requests) == 3, "the resolved message")
    resolved = http_server.requests[2].json()["text"]
    assert resolved.startswith(
        ":large_green_circle: *Resolved: the stuck run of notebook “ETL” ended (canceled)*"
    )
    assert h.alerts.get(h.app.id, etl, FailureClass.OVERDUE).state.value == "resolved"
    h.app.cancel(report, other)
    h.run_until(lambda: other in h.seen and not h.queue, "the other run canceled")
    clock.now += 7200
    h.pump()
    assert len(http_server.requests) == 3


def test_the_scheduler_repairs_what_a_dead_process_left_half_done(harness, http_server):
    h = harness(
        f"""\
        channels:
          slack: {{kind: slack, url: "{http_server.url}/services/T/B/x"}}
        alerts: {{group_wait: 0s}}
        rules:
          failed: {{notebook: B, statuses: [errored], actions: [{{notify: [slack]}}]}}
        pipelines:
          p:
            steps:
              a: {{notebook: A}}
              b: {{notebook: B, after: a}}
        """
    )
    h.notebook("A")
    b = h.notebook("B", status="errored")
    h.registry.refresh()
    h.held.append("run:")
    run = h.followups.start_run("p", {}, "test")
    # A worker fails a's action for good and dies before telling the run.
    (_, key), *_ = h.queue
    h.queue.clear()
    h.ledger.fail(h.ledger.acquire(key), "notebook went away")
    h.held.clear()
    final = h.run_until(lambda: (r := h.followups.run(run.id)).finished_at and r, "repair")
    assert final.steps["a"].reason == "notebook went away"
    assert final.steps["b"].state is StepState.SKIPPED

    # An alert moved to firing by a scheduler that died before opening its messages.
    h.app.execute(b)
    h.run_until(lambda: h.alerts.get(h.app.id, b, FailureClass.ERRORED), "the alert")
    (due,) = h.alerts.fire_due()  # the state moves on; no message is opened
    assert due.number == 1 and http_server.requests == []
    h.run_until(lambda: len(http_server.requests) == 1, "the repaired message")


def test_an_execute_whose_outcome_is_unknown_is_looked_up_before_it_is_repeated(
    harness, sandbox_app, monkeypatch
):
    monkeypatch.setattr(defaults, "ACTION_UNKNOWN_WAIT", 0.2)
    monkeypatch.setattr(defaults, "ACTION_RETRY_BASE", 0.1)
    proxy = SlowProxy(sandbox_app.sandbox.url).start()
    try:
        h = harness("pipelines:\n  p:\n    steps:\n      a: {notebook: A}\n", losant_url=proxy.url)
        a = h.notebook("A")
        proxy.fail_once("POST", rf"/notebooks/{a}/execute", 502)  # queued, but the answer is lost
        h.registry.refresh()
        run = h.followups.start_run("p", {}, "test")
        h.drain()
        record = h.followups.action(f"run:{run.id}:a:1")
        assert record.state is ActionState.PENDING and "may or may not" in record.error
        final = h.run_until(lambda: (r := h.followups.run(run.id)).finished_at and r, "run")
        key = f"run:{run.id}:a:1"
        done = h.run_until(
            lambda: (r := h.followups.action(key)).state is ActionState.DONE and r, "lookup"
        )
    finally:
        proxy.stop()
    assert final.status is RunStatus.COMPLETED
    assert h.app.stats(a)["requests"]["execute"] == 1
    assert done.attempts == 2 and done.outcome["found_in_losant"] is True


def test_a_lost_execute_is_looked_up_within_the_logs_cap(
    harness, sandbox_app, sandbox_guesses, monkeypatch
):
    """Under a `/logs` cap that answers a larger `limit` with a 400, the lookup asks for the cap
    it reads from the 400, finds the run, and remembers the cap as the syncs do."""
    monkeypatch.setattr(defaults, "ACTION_UNKNOWN_WAIT", 0.2)
    monkeypatch.setattr(defaults, "ACTION_RETRY_BASE", 0.1)
    sandbox_guesses(logsLimitCap=10, logsAboveCap="reject")
    proxy = SlowProxy(sandbox_app.sandbox.url).start()
    try:
        h = harness("pipelines:\n  p:\n    steps:\n      a: {notebook: A}\n", losant_url=proxy.url)
        a = h.notebook("A")
        proxy.fail_once("POST", rf"/notebooks/{a}/execute", 502)  # queued, but the answer is lost
        h.registry.refresh()
        run = h.followups.start_run("p", {}, "test")
        key = f"run:{run.id}:a:1"
        done = h.run_until(
            lambda: (r := h.followups.action(key)).state is ActionState.DONE and r, "lookup"
        )
    finally:
        proxy.stop()
    assert h.app.stats(a)["requests"]["execute"] == 1
    assert done.outcome["found_in_losant"] is True
    assert h.redis.get(keys.logs_limit_cap(sandbox_app.id)) == "10"


def test_a_lost_execute_still_queued_is_found_whatever_logs_since_compares(
    harness, sandbox_app, sandbox_guesses, monkeypatch
):
    """Losant does not say which time of an execution `/logs?since=` compares: under `started`
    (or `ended`) a run still queued behind the application's parallel-run limit is not listed
    after any `since`; under every meaning the lookup finds it and nothing is started twice."""
    monkeypatch.setattr(defaults, "ACTION_UNKNOWN_WAIT", 0.2)
    monkeypatch.setattr(defaults, "ACTION_RETRY_BASE", 0.1)
    sandbox_app.sandbox.client.update_application(sandbox_app.id, parallelRuns=1)
    proxy = SlowProxy(sandbox_app.sandbox.url).start()
    try:
        h = harness("pipelines:\n  p:\n    steps:\n      a: {notebook: A}\n", losant_url=proxy.url)
        blocker = h.notebook("Blocker", durationSeconds=120)
        ahead = h.app.execute(blocker)
        h.app.wait_for_status(blocker, ahead, ["inProgress"])
        a = h.notebook("A")
        for since in guesses.LOGS_SINCE:
            sandbox_guesses(logsSince=since)
            proxy.fail_once("POST", rf"/notebooks/{a}/execute", 502)  # queued, answer lost
            h.registry.refresh()
            run = h.followups.start_run("p", {}, "test")
            key = f"run:{run.id}:a:1"
            h.drain()
            assert h.followups.action(key).state is ActionState.PENDING
            done = h.run_until(
                lambda k=key: (r := h.followups.action(k)).state is ActionState.DONE and r,
                f"the lookup under {since}",
            )
            queued = [e for e in h.executions(a) if e["context"]["nbrelay"]["run"] == run.id]
            assert [e["status"] for e in queued] == ["queued"], since
            assert done.outcome == {"execution_id": queued[0]["id"], "found_in_losant": True}
            assert h.followups.run(run.id).steps["a"].executions[0]["id"] == queued[0]["id"]
        h.app.cancel(blocker, ahead)
        for run_id in {e["context"]["nbrelay"]["run"] for e in h.executions(a)}:
            final = h.run_until(lambda r=run_id: (f := h.followups.run(r)).finished_at and f, "run")
            assert final.status is RunStatus.COMPLETED
    finally:
        proxy.stop()
    assert h.app.stats(a)["requests"]["execute"] == len(guesses.LOGS_SINCE)  # once per run


TWO_STEPS = """\
pipelines:
  p:
    steps:
      a: {notebook: A}
      b:
        notebook: B
        after: a
        context: {from_a: "{{ steps.a.id }}"}
"""


def foreign(kind: str) -> float:
    return REGISTRY.get_sample_value("nbrelay_foreign_markers_total", {"kind": kind}) or 0.0


def forge(h: Harness, notebook_id: str, marker: dict, status: str) -> str:
    """Start an execution directly in Losant with a copy of nbrelay's marker, as anyone who may
    run notebooks in the application can; it ends `status`."""
    h.app.set_behaviour(notebook_id, status=status, durationSeconds=0.1)
    return h.app.execute(notebook_id, templateContext=json.dumps({"nbrelay": marker}))


def test_a_forged_marker_neither_completes_nor_fails_the_step(harness, caplog):
    h = harness(
        TWO_STEPS
        + """\
rules:
  a-failed:
    notebook: A
    statuses: [errored]
    actions: [{retry: {max_attempts: 2, backoff: [0s]}}]
"""
    )
    a, b = h.notebook("A", durationSeconds=3.0), h.notebook("B")
    h.registry.refresh()
    run = h.followups.start_run("p", {}, "test")
    h.drain()
    ((real, marker),) = [(e["id"], e["context"]["nbrelay"]) for e in h.executions(a)]
    before = foreign("step")
    # While the real execution runs, two copies of its marker end: one errored, one completed.
    failed = forge(h, a, marker, "errored")
    completed = forge(h, a, marker, "completed")
    with caplog.at_level(logging.WARNING):
        h.run_until(lambda: {failed, completed} <= h.seen, "the forged executions to end")
    step = h.followups.run(run.id).steps["a"]
    assert step.state is StepState.RUNNING and step.attempt == 1
    assert [e["id"] for e in step.executions] == [real]
    assert h.executions(b) == []
    assert foreign("step") == before + 2
    warnings = [r.getMessage() for r in caplog.records if "did not start it" in r.getMessage()]
    assert any(failed in w and f"run {run.id} step a" in w for w in warnings)
    # To the rules a forged execution is an ordinary one: the failed one is retried.
    retry = h.run_until(
        lambda: next((e for e in h.executions(a) if "retry_of" in e["context"]["nbrelay"]), None),
        "the rule to retry the forged execution",
    )
    assert retry["context"]["nbrelay"]["retry_of"] == failed

    final = h.run_until(lambda: (r := h.followups.run(run.id)).finished_at and r, "the run")
    assert final.status is RunStatus.COMPLETED
    assert final.steps["a"].execution["id"] == real
    assert [e["id"] for e in final.steps["a"].executions] == [real]
    (b_run,) = h.executions(b)
    assert b_run["context"]["from_a"] == real


def test_a_step_execution_that_ends_before_it_is_recorded_is_handed_on_once(harness):
    h = harness(TWO_STEPS)
    a, b = h.notebook("A"), h.notebook("B")
    h.registry.refresh()
    ended_early: list[dict] = []

    def sync_before_recorded(execution_id: str) -> None:
        """Losant answered the execute; before the worker records the id, the execution ends
        and a sync hands it on, together with a forged copy that failed."""
        if ended_early:
            return
        h.on_started = None
        (step,) = h.executions(a)
        forged = forge(h, a, step["context"]["nbrelay"], "errored")
        for done in (execution_id, forged):
            h.app.wait_for_status(a, done, ["completed", "errored"])
        ended_early.extend(h.app.logs(a))
        h.sync()
        assert {execution_id, forged} <= h.seen
        run = h.followups.run(run_id[0])
        assert run.steps["a"].state is StepState.RUNNING and run.steps["a"].executions == []

    h.on_started = sync_before_recorded
    run_id = [h.followups.start_run("p", {}, "test").id]
    h.drain()
    assert len(ended_early) == 2
    # The worker recorded the execution and found it already ended: the step completed.
    done = h.followups.run(run_id[0])
    assert done.steps["a"].state is StepState.COMPLETED
    real = h.followups.action(f"run:{run_id[0]}:a:1").outcome["execution_id"]
    assert [e["id"] for e in done.steps["a"].executions] == [real]

    final = h.run_until(lambda: (r := h.followups.run(run_id[0])).finished_at and r, "the run")
    assert final.status is RunStatus.COMPLETED
    # Handed on again (a redelivery, a second sync): nothing more happens.
    h.terminal(h.store.get(real).losant, a)
    h.pump()
    assert h.followups.run(run_id[0]).to_json() == final.to_json()
    assert h.app.stats(b)["requests"]["execute"] == 1
    (b_run,) = h.executions(b)
    assert b_run["context"]["from_a"] == real


def test_an_execution_found_after_a_lost_answer_is_recorded_and_completes_the_step(
    harness, sandbox_app, monkeypatch
):
    monkeypatch.setattr(defaults, "ACTION_UNKNOWN_WAIT", 1.0)
    proxy = SlowProxy(sandbox_app.sandbox.url).start()
    try:
        h = harness(TWO_STEPS, losant_url=proxy.url)
        a, b = h.notebook("A"), h.notebook("B")
        proxy.fail_once("POST", rf"/notebooks/{a}/execute", 502)  # queued, but the answer is lost
        h.registry.refresh()
        run = h.followups.start_run("p", {}, "test")
        h.drain()
        key = f"run:{run.id}:a:1"
        assert h.followups.action(key).state is ActionState.PENDING
        # Before the action looks again, someone copies the marker of the queued execution.
        ((real, marker),) = [(e["id"], e["context"]["nbrelay"]) for e in h.executions(a)]
        forged = forge(h, a, marker, "errored")
        h.app.wait_for_status(a, forged)
        final = h.run_until(lambda: (r := h.followups.run(run.id)).finished_at and r, "run")
        done = h.followups.action(key)
    finally:
        proxy.stop()
    assert done.state is ActionState.DONE and done.outcome["found_in_losant"] is True
    assert done.outcome["execution_id"] == real
    assert final.status is RunStatus.COMPLETED
    assert [e["id"] for e in final.steps["a"].executions] == [real]
    assert h.app.stats(a)["requests"]["execute"] == 2  # the lost one and the forged one
    (b_run,) = h.executions(b)
    assert b_run["context"]["from_a"] == real


def test_a_copy_planted_before_the_execute_whose_answer_is_lost_is_not_recorded(
    harness, sandbox_app, monkeypatch
):
    monkeypatch.setattr(defaults, "ACTION_UNKNOWN_WAIT", 1.0)
    proxy = SlowProxy(sandbox_app.sandbox.url).start()
    try:
        h = harness(TWO_STEPS, losant_url=proxy.url)
        a, b = h.notebook("A"), h.notebook("B")
        h.registry.refresh()
        h.held.append("run:")
        run = h.followups.start_run("p", {}, "test")
        key = f"run:{run.id}:a:1"
        # The run id is known as soon as the run starts, and the rest of the step's marker can
        # be worked out: before nbrelay executes, someone starts executions carrying it, one
        # without a nonce and one with a guessed nonce. Both complete.
        predictable = {"run": run.id, "step": "a", "attempt": 1}
        planted = [
            forge(h, a, predictable, "completed"),
            forge(h, a, {**predictable, "nonce": "A" * 22}, "completed"),
        ]
        for execution_id in planted:
            h.app.wait_for_status(a, execution_id)
        h.app.set_behaviour(a, status="completed", durationSeconds=0.1)
        proxy.fail_once("POST", rf"/notebooks/{a}/execute", 502)  # queued, but the answer is lost
        h.held.clear()
        h.drain()
        assert h.followups.action(key).state is ActionState.PENDING
        (real,) = [e["id"] for e in h.executions(a) if e["id"] not in planted]
        final = h.run_until(lambda: (r := h.followups.run(run.id)).finished_at and r, "run")
        done = h.followups.action(key)
    finally:
        proxy.stop()
    # The planted executions are older, but only nbrelay's own carries the action's nonce.
    assert done.state is ActionState.DONE and done.outcome["found_in_losant"] is True
    assert done.outcome["execution_id"] == real
    assert done.attempts == 2
    assert final.status is RunStatus.COMPLETED
    assert final.steps["a"].execution["id"] == real
    assert [e["id"] for e in final.steps["a"].executions] == [real]
    assert h.app.stats(a)["requests"]["execute"] == 3  # the two planted and the lost one
    (b_run,) = h.executions(b)
    assert b_run["context"]["from_a"] == real


def test_a_copy_planted_before_a_rule_execute_whose_answer_is_lost_is_not_recorded(
    harness, sandbox_app, monkeypatch
):
    monkeypatch.setattr(defaults, "ACTION_UNKNOWN_WAIT", 1.0)
    proxy = SlowProxy(sandbox_app.sandbox.url).start()
    try:
        h = harness(
            """\
            rules:
              after-etl:
                notebook: ETL
                statuses: [completed]
                actions: [{execute: {notebook: Report}}]
            """,
            losant_url=proxy.url,
        )
        etl, report = h.notebook("ETL"), h.notebook("Report")
        h.registry.refresh()
        h.held.append("rule:")
        source = h.app.execute(etl)
        key = f"rule:after-etl:0:{source}:completed"
        h.run_until(lambda: h.followups.action(key), "the rule's execute to be opened")
        planted = forge(h, report, {"action": key}, "completed")
        h.app.wait_for_status(report, planted)
        h.app.set_behaviour(report, status="completed", durationSeconds=0.1)
        proxy.fail_once("POST", rf"/notebooks/{report}/execute", 502)
        h.held.clear()
        h.drain()
        assert h.followups.action(key).state is ActionState.PENDING
        done = h.run_until(
            lambda: (r := h.followups.action(key)).state is ActionState.DONE and r, "lookup"
        )
    finally:
        proxy.stop()
    (real,) = [e["id"] for e in h.executions(report) if e["id"] != planted]
    assert done.outcome == {"execution_id": real, "found_in_losant": True}
    assert h.app.stats(report)["requests"]["execute"] == 2  # the planted one and the lost one


def test_a_forged_retry_marker_does_not_change_how_often_a_rule_retries(harness):
    h = harness(
        """\
        rules:
          etl-failed:
            notebook: ETL
            statuses: [errored]
            actions: [{retry: {max_attempts: 2, backoff: [0s]}}]
        """
    )
    etl = h.notebook("ETL", status="errored")
    h.registry.refresh()
    before = foreign("retry")
    marker = {"action": "retry:x:errored", "rule": "etl-failed", "retry_of": "x", "attempt": -5}
    forged = forge(h, etl, marker, "errored")
    second = h.run_until(lambda: len(runs := h.executions(etl)) == 2 and runs[1], "the retry")
    assert second["context"]["nbrelay"]["retry_of"] == forged
    assert second["context"]["nbrelay"]["attempt"] == 2
    h.run_until(lambda: second["id"] in h.seen, "the retry to end")
    h.pump()
    assert h.followups.action(keys.retry_action(second["id"], "errored")) is None
    assert len(h.executions(etl)) == 2
    assert foreign("retry") == before + 1


def test_an_end_missed_by_a_worker_that_died_after_recording_is_repaired(harness):
    h = harness(TWO_STEPS)
    a, b = h.notebook("A"), h.notebook("B")
    h.registry.refresh()
    h.held.append("run:")
    run = h.followups.start_run("p", {}, "test")
    ((_, key),) = h.queue
    h.queue.clear()
    # A worker starts a's execution; it ends and is handed on before the worker records it...
    lease = h.ledger.acquire(key)
    marker = spec_marker(lease.record.spec)
    execution_id = h.start("A", requested_by="test", context=None, relative_to=None, marker=marker)
    h.app.wait_for_status(a, execution_id)
    h.sync()
    assert execution_id in h.seen
    # ...then records it in the ledger and in the run, and dies before it looks at the store.
    assert h.ledger.complete(lease, {"execution_id": execution_id})
    RunStore(h.redis, ttl=TTL).change(
        run.id, lambda r, now: execution_started(r, "a", 1, execution_id)
    )
    assert h.followups.run(run.id).steps["a"].state is StepState.RUNNING
    h.held.clear()
    final = h.run_until(lambda: (r := h.followups.run(run.id)).finished_at and r, "the repair")
    assert final.status is RunStatus.COMPLETED
    assert final.steps["a"].execution["id"] == execution_id
    assert h.app.stats(b)["requests"]["execute"] == 1
