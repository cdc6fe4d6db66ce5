"""Alert states in Redis: group_wait, repeat_interval, resolution, and a notebook's history."""

from __future__ import annotations

import pytest

from service.followups.alerts.history import NotebookHistory
from service.followups.alerts.state import Alerts, AlertState
from service.followups.messages import FailureClass
from service.followups.pipeline_file.model import AlertSettings

SETTINGS = AlertSettings(group_wait=30, repeat_interval=3600, send_resolved=True)
APP = "65a0c0ffee0000000000a001"
NB = "65a0c0ffee0000000000b001"
TTL = 30 * 86400


@pytest.fixture
def alerts(text_redis, clock):
    return Alerts(text_redis, ttl=TTL, clock=clock)


def fail(alerts, execution_id, channels=("slack",), settings=SETTINGS):
    return alerts.failed(
        APP, NB, FailureClass.ERRORED, {"id": execution_id, "status": "errored"}, list(channels),
        settings, notebook_name="Nightly ETL",
    )  # fmt: skip


def test_first_message_waits_for_group_wait_then_repeats(alerts, clock):
    alert = fail(alerts, "e1")
    assert alert.state is AlertState.PENDING and alert.episode == 1
    assert alerts.fire_due() == []
    clock.now += 10
    fail(alerts, "e2", channels=("email",))  # grouped into the same episode
    clock.now += 20
    (due,) = alerts.fire_due()
    assert due.number == 1 and due.channels == ("email", "slack")
    assert due.alert.failures == 2
    assert due.action_key("slack") == f"notify:{APP}:{NB}:errored:1:1:slack"
    assert alerts.fire_due() == []
    clock.now += 3599
    fail(alerts, "e3")
    assert alerts.fire_due() == []  # no repeat before repeat_interval
    clock.now += 1
    (repeat,) = alerts.fire_due()
    assert repeat.number == 2 and repeat.alert.failures == 3


def test_repeated_transitions_count_once(alerts):
    fail(alerts, "e1")
    assert fail(alerts, "e1").failures == 1


def test_two_rules_on_one_failure_feed_one_alert_with_the_strictest_settings(alerts, clock):
    loose = AlertSettings(
        group_wait=600, repeat_interval=7200, send_resolved=False, severity="info"
    )
    strict = AlertSettings(
        group_wait=60, repeat_interval=600, send_resolved=True, severity="critical"
    )
    fail(alerts, "e1", ("email",), loose)
    alert = fail(alerts, "e1", ("pager",), strict.model_copy(update={"severity": "warning"}))
    assert alert.failures == 1 and alert.channels == ["email", "pager"]
    assert (alert.group_wait, alert.repeat_interval, alert.send_resolved) == (60, 600, True)
    assert alert.severity == "warning" and alert.next_at == clock.now + 60
    assert fail(alerts, "e1", ("email",), loose).severity == "warning"  # the same once more
    clock.now += 60
    (first,) = alerts.fire_due()
    assert first.channels == ("email", "pager")
    clock.now += 30
    # a new failure takes its rules' settings on afresh (the episode keeps its group_wait)
    alert = fail(alerts, "e2", ("email",), loose)
    assert (alert.group_wait, alert.repeat_interval, alert.send_resolved) == (60, 7200, False)
    assert alert.severity == "info" and alert.next_at == clock.now - 30 + 7200
    alert = fail(alerts, "e2", ("pager",), strict)
    assert (alert.repeat_interval, alert.send_resolved, alert.severity) == (600, True, "critical")
    assert alert.next_at == clock.now - 30 + 600


def test_completion_resolves_with_a_message_only_if_one_was_sent(alerts, clock):
    fail(alerts, "e1")
    assert alerts.completed(APP, NB, {"id": "ok1"}) == []  # resolved before anything was sent
    assert alerts.get(APP, NB, FailureClass.ERRORED).state is AlertState.RESOLVED
    clock.now += 100
    assert alerts.fire_due() == []
    fail(alerts, "e2")
    clock.now += 30
    (first,) = alerts.fire_due()
    assert first.alert.episode == 2
    (resolved,) = alerts.completed(APP, NB, {"id": "ok2"})
    assert resolved.number is None
    assert resolved.action_key("slack") == f"notify:{APP}:{NB}:errored:2:resolved:slack"
    alert = alerts.get(APP, NB, FailureClass.ERRORED)
    assert alert.state is AlertState.RESOLVED and alert.resolved_by == {"id": "ok2"}
    assert alerts.completed(APP, NB, {"id": "ok3"}) == []
    clock.now += 10_000
    assert alerts.fire_due() == []
    assert [a.resolved_by for a in alerts.all()] == [{"id": "ok2"}]


def test_alert_classes_are_separate(alerts, clock):
    fail(alerts, "e1")
    alerts.failed(APP, NB, FailureClass.TIMEOUT, {"id": "e2"}, ["slack"], SETTINGS)
    clock.now += 30
    assert sorted(d.alert.id for d in alerts.fire_due()) == [
        f"{APP}:{NB}:errored",
        f"{APP}:{NB}:timeout",
    ]


def test_history_counts_each_execution_once(text_redis):
    history = NotebookHistory(text_redis, ttl=TTL)
    assert history.get(APP, NB).consecutive_failures == 0
    history.record(APP, NB, "ok", "completed", "2024-05-01T02:00:00Z", 1)
    for execution in ("e1", "e2", "e2"):
        history.record(APP, NB, execution, "errored", "", 2)
    state = history.get(APP, NB)
    assert state.consecutive_failures == 2
    assert state.last_success_execution_id == "ok"
    assert state.last_success_at.isoformat() == "2024-05-01T02:00:00+00:00"


def test_a_notebook_id_in_two_applications_has_two_alerts_and_histories(alerts, text_redis):
    other_app = "65a0c0ffee0000000000a002"
    fail(alerts, "e1")
    alerts.failed(other_app, NB, FailureClass.ERRORED, {"id": "e9"}, ["email"], SETTINGS)
    assert alerts.get(APP, NB, FailureClass.ERRORED).channels == ["slack"]
    assert alerts.get(other_app, NB, FailureClass.ERRORED).channels == ["email"]
    assert alerts.completed(other_app, NB, {"id": "ok"}) == []
    assert alerts.get(APP, NB, FailureClass.ERRORED).state is AlertState.PENDING
    history = NotebookHistory(text_redis, ttl=TTL)
    history.record(APP, NB, "e1", "errored", "", 1)
    assert history.get(APP, NB).consecutive_failures == 1
    assert history.get(other_app, NB).consecutive_failures == 0


def stuck(alerts, execution_id):
    return alerts.failed(
        APP, NB, FailureClass.OVERDUE, {"id": execution_id, "status": "inProgress"}, ["slack"],
        SETTINGS,
    )  # fmt: skip


def test_an_overdue_alert_resolves_when_its_stuck_runs_have_ended_not_on_a_completion(
    alerts, clock
):
    stuck(alerts, "e1")
    stuck(alerts, "e2")
    assert stuck(alerts, "e1").failures == 2  # counted once
    clock.now += 30
    (due,) = alerts.fire_due()
    assert due.alert.stuck == ["e1", "e2"]
    assert alerts.completed(APP, NB, {"id": "e3", "status": "completed"}) == []
    assert alerts.run_ended(APP, NB, {"id": "e3", "status": "completed"}) == []
    assert alerts.run_ended(APP, NB, {"id": "e1", "status": "errored"}) == []
    overdue = alerts.get(APP, NB, FailureClass.OVERDUE)
    assert overdue.state is AlertState.FIRING and overdue.stuck == ["e2"]
    (resolved,) = alerts.run_ended(APP, NB, {"id": "e2", "status": "canceled"})
    assert resolved.number is None and resolved.alert.resolved_by["status"] == "canceled"
    assert alerts.get(APP, NB, FailureClass.OVERDUE).state is AlertState.RESOLVED
    assert alerts.run_ended(APP, NB, {"id": "e2", "status": "canceled"}) == []  # once
