"""A rule's own alert settings (group_wait, repeat_interval, send_resolved, severity) over the
global `alerts:` block, and inhibition inside a pipeline run: the alert of a failed step names
the steps skipped because of it, which raise none of their own. In one process, against the
sandbox, a real Redis and a real HTTP receiver."""

from __future__ import annotations

import base64

from service.followups.messages import FailureClass
from service.followups.pipelines.runs import StepState
from service.web import create_app
from service.web.pipelines import alert_json
from tests.support.dashboard import signed_in
from tests.support.web import CONSOLE

SECRET = "whsec_" + base64.b64encode(b"nbrelay-settings-webhook-secret!").decode()


def received(server, path: str) -> list[dict]:
    return [r.json() for r in server.requests if r.path == path]


def test_each_rule_alerts_with_its_own_settings_and_the_global_ones_for_the_rest(
    harness, http_server, clock
):
    h = harness(
        f"""\
        channels:
          slack: {{kind: slack, url: "{http_server.url}/services/T/B/x"}}
          hook: {{kind: webhook, url: "{http_server.url}/hook", secret: "{SECRET}"}}
        alerts: {{group_wait: 10m, repeat_interval: 1h, severity: warning}}
        rules:
          paged:
            notebook: A
            statuses: errored
            actions:
              - notify:
                  channels: [hook]
                  group_wait: 30s
                  repeat_interval: 5m
                  send_resolved: false
                  severity: critical
          listed:
            notebook: B
            statuses: errored
            actions: [{{notify: [slack]}}]
        """,
        clock=clock,
    )
    a, b = h.notebook("A", status="errored"), h.notebook("B", status="errored")
    h.registry.refresh()
    h.app.execute(a)
    h.app.execute(b)
    h.run_until(lambda: len(h.seen) == 2, "both failures")
    assert http_server.requests == []

    def after(seconds: float) -> tuple[int, int]:
        clock.now += seconds
        h.pump()
        return len(received(http_server, "/hook")), len(received(http_server, "/services/T/B/x"))

    assert after(29) == (0, 0)
    assert after(1) == (1, 0)  # A's group_wait of 30s
    (first,) = received(http_server, "/hook")
    assert first["type"] == "notebook.alert.firing"
    assert first["data"]["severity"] == "critical" and first["data"]["notebook_name"] == "A"
    assert after(299) == (1, 0)
    assert after(1) == (2, 0)  # repeated after A's 5m
    assert after(269) == (2, 0)
    assert after(1) == (2, 1)  # B's group_wait from the global block: 10m
    (listed,) = received(http_server, "/services/T/B/x")
    assert "Severity: *warning*" in listed["text"] and "“B” errored" in listed["text"]
    assert after(30) == (3, 1)  # A again at 10m30s

    h.app.set_behaviour(a, status="completed", durationSeconds=0.1)
    h.app.set_behaviour(b, status="completed", durationSeconds=0.1)
    h.app.execute(a)
    h.app.execute(b)
    h.run_until(lambda: len(h.seen) == 4, "both completions")
    assert after(0) == (3, 2)  # B's resolved message; A has send_resolved off
    resolved = received(http_server, "/services/T/B/x")[1]["text"]
    assert resolved.startswith(":large_green_circle: *Resolved") and "*warning*" in resolved
    states = {(x.notebook_id, x.state.value, x.severity) for x in h.followups.alerts()}
    assert states == {(a, "resolved", "critical"), (b, "resolved", "warning")}
    assert after(3600) == (3, 2)


def test_a_failed_steps_alert_names_the_skipped_steps_which_raise_none(
    harness, http_server, make_components
):
    h = harness(
        f"""\
        channels:
          slack: {{kind: slack, url: "{http_server.url}/services/T/B/x"}}
          hook: {{kind: webhook, url: "{http_server.url}/hook", secret: "{SECRET}"}}
        alerts: {{group_wait: 0s}}
        pipelines:
          p:
            steps:
              a: {{notebook: A}}
              b: {{notebook: B, after: a}}
        rules:
          a-failed:
            notebook: A
            statuses: errored
            actions: [{{notify: [hook, slack]}}]
          b-any-failure:
            notebook: B
            statuses: [errored, timeout, canceled, missing_callback]
            actions: [{{notify: [hook]}}]
        """
    )
    a, b = h.notebook("A", status="errored"), h.notebook("B", status="errored")
    h.registry.refresh()
    run = h.followups.start_run("p", {}, "test")
    final = h.run_until(lambda: (r := h.followups.run(run.id)).finished_at and r, "the run to end")
    assert final.steps["a"].state is StepState.FAILED
    assert final.steps["b"].state is StepState.SKIPPED
    h.run_until(lambda: len(http_server.requests) == 2 and not h.queue, "the alert")

    (message,) = received(http_server, "/hook")
    assert message["data"]["notebook_id"] == a
    failure = {"pipeline": "p", "run": run.id, "step": "a", "skipped": ["b"]}
    assert message["data"]["step_failure"] == failure
    (slack,) = received(http_server, "/services/T/B/x")
    assert (
        f"Pipeline pipeline p run {run.id}: step a failed; skipped because of it: b"
        in (slack["text"])
    )
    # b never ran, so nothing can alert about it: no state, and no message however long we wait
    assert h.executions(b) == []
    assert all(h.alerts.get(h.app.id, b, fc) is None for fc in FailureClass)
    h.pump()
    assert len(http_server.requests) == 2
    (alert,) = h.followups.alerts()
    shown = alert_json(alert, [], h.followups.alert_step_failure(alert))
    assert shown["pipelineStep"] == {
        "pipeline": "p",
        "run": run.id,
        "step": "a",
        "inhibited": ["b"],
    }
    (notice, _) = h.followups.alert_notifications(alert)
    assert notice.spec["message"]["step_failure"]["skipped"] == ["b"]
    console = signed_in(create_app(components=make_components(**CONSOLE)))
    page = console.get("/alerts").get_data(as_text=True)
    assert "step a; skipped because of it (not alerted separately): b" in page
