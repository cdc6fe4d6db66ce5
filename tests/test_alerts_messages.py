"""What alert messages say, in each channel's layout."""

from __future__ import annotations

from service import defaults
from service.followups.messages import (
    AlertMessage,
    Event,
    ExecutionError,
    FailureClass,
    StepFailure,
    email_html,
    email_subject,
    email_text,
    error_lines,
    headline,
    log_text,
    slack_text,
    webhook_payload,
)
from tests.support.alert_messages import firing_message


def test_headline_names_notebook_and_failure():
    assert headline(firing_message()) == "Notebook “Nightly ETL” errored"
    assert headline(firing_message(failure_class=FailureClass.TIMEOUT)) == (
        "Notebook “Nightly ETL” timed out"
    )
    assert headline(firing_message(failure_class=FailureClass.MISSING_CALLBACK)) == (
        "Notebook “Nightly ETL” sent no completion callback"
    )
    assert headline(firing_message(event=Event.RESOLVED)).startswith("Resolved:")


def test_slack_text_carries_what_on_call_needs():
    text = slack_text(firing_message())
    assert text.startswith(":red_circle: *Notebook “Nightly ETL” errored*")
    assert "`65a0c0ffee0000000000b001`" in text
    assert "`65a0c0ffee0000000000e001`" in text and "*errored*" in text
    # Slack's control characters in error text are escaped
    assert "> KeyError: 'temperature' &lt;column missing&gt; &amp; more" in text
    assert "3 failures in a row; last success 2024-04-28 02:05:00 UTC" in text
    assert "<https://files.example.com/runs/e001/result.error.log|result.error.log>" in text
    assert "<https://files.example.com/runs/e001/result.log|result.log>" in text


def test_email_subject_text_and_html():
    message = firing_message()
    assert email_subject(message) == "[nbrelay] Notebook “Nightly ETL” errored"
    text = email_text(message)
    for expected in (
        "Execution:  65a0c0ffee0000000000e001",
        "Status:     errored",
        "Failures:   3 failures in a row",
        "History:    last success 2024-04-28 02:05:00 UTC (execution 65a0c0ffee0000000000e000)",
        "  KeyError: 'temperature' <column missing> & more",
        "  result.error.log: https://files.example.com/runs/e001/result.error.log",
    ):
        assert expected in text
    html = email_html(message)
    assert "&lt;column missing&gt; &amp; more" in html  # escaped in HTML
    assert '<a href="https://files.example.com/runs/e001/result.log">result.log</a>' in html


def test_resolved_message_says_how_long_it_was_broken():
    message = firing_message(
        event=Event.RESOLVED, status="completed", errors=(), log_url=None, error_log_url=None
    )
    text = slack_text(message)
    assert text.startswith(
        ":large_green_circle: *Resolved: notebook “Nightly ETL” completed again*"
    )
    assert "Recovered after 3 failures in a row" in text
    assert "result.log" not in text


def test_errors_are_cut_to_a_readable_size():
    errors = tuple(ExecutionError("E", "x" * 2000) for _ in range(defaults.ALERT_ERRORS_SHOWN + 2))
    lines = error_lines(firing_message(errors=errors))
    assert len(lines) == defaults.ALERT_ERRORS_SHOWN + 1
    assert len(lines[0]) < 520 and lines[0].endswith("…")
    assert lines[-1] == "… and 2 more"


def test_message_without_history_or_logs():
    message = firing_message(
        consecutive_failures=1, last_success_at=None, last_success_execution_id=None,
        log_url=None, error_log_url=None, errors=(),
    )  # fmt: skip
    text = email_text(message)
    assert "1 failure in a row" in text
    assert "no successful run on record" in text
    assert "Logs:" not in text and "Errors:" not in text


def test_log_line_is_one_line():
    line = log_text(firing_message())
    assert "\n" not in line
    assert line.startswith("Notebook “Nightly ETL” errored execution=65a0c0ffee0000000000e001")
    assert "failures_in_a_row=3" in line


def test_webhook_payload_round_trips():
    message = firing_message()
    payload = webhook_payload(message)
    assert payload["type"] == "notebook.alert.firing"
    assert payload["data"]["summary"] == "Notebook “Nightly ETL” errored"
    assert payload["data"]["errors"] == [
        {"name": "KeyError", "message": "'temperature' <column missing> & more"}
    ]
    data = dict(payload["data"])
    data.pop("summary")
    assert AlertMessage.from_dict(data) == message


def test_severity_and_skipped_steps_in_every_layout():
    failure = StepFailure("nightly", "0a1b2c3d4e5f6a7b", "extract", ("features", "report"))
    message = firing_message(severity="critical", step_failure=failure)
    said = "pipeline nightly run 0a1b2c3d4e5f6a7b: step extract failed; skipped because of it:"
    said += " features, report"
    assert "Severity: *critical*\n" in slack_text(message)
    assert f"Pipeline {said}\n" in slack_text(message)
    assert "Severity:   critical\n" in email_text(message)
    assert f"Pipeline:   {said}\n" in email_text(message)
    assert '<th align="left">Severity</th><td>critical</td>' in email_html(message)
    assert f'<th align="left">Pipeline</th><td>{said}</td>' in email_html(message)
    assert "severity=critical" in log_text(message) and f'pipeline="{said}"' in log_text(message)
    data = dict(webhook_payload(message)["data"])
    assert data["severity"] == "critical"
    assert data["step_failure"] == {
        "pipeline": "nightly",
        "run": "0a1b2c3d4e5f6a7b",
        "step": "extract",
        "skipped": ["features", "report"],
    }
    data.pop("summary")
    assert AlertMessage.from_dict(data) == message
    plain = firing_message()
    assert plain.severity == "error" and "Severity: *error*" in slack_text(plain)
    assert "Pipeline" not in slack_text(plain) + email_text(plain)


def test_test_notification():
    message = AlertMessage(
        id="msg_test", event=Event.TEST, created_at=firing_message().created_at, channel="ops"
    )
    assert slack_text(message).startswith(":bell: *Test notification from nbrelay (channel ops)*")
    assert "Execution" not in email_text(message)


def test_an_overdue_message_says_how_long_the_run_is_stuck_and_how_it_ended():
    stuck = firing_message(
        failure_class=FailureClass.OVERDUE, status="inProgress", errors=(), finished_at=None,
        consecutive_failures=1,
    )  # fmt: skip
    # queued 02:00:00, the message made 02:04:00
    assert headline(stuck) == "Notebook “Nightly ETL” has a run stuck inProgress for 4 min"
    text = slack_text(stuck)
    assert text.startswith(":red_circle: *Notebook “Nightly ETL” has a run stuck inProgress")
    assert "1 run stuck; last success 2024-04-28 02:05:00 UTC" in text
    assert "Failures:   2 runs stuck" in email_text(
        firing_message(failure_class=FailureClass.OVERDUE, consecutive_failures=2)
    )
    ended = firing_message(event=Event.RESOLVED, failure_class=FailureClass.OVERDUE)
    assert headline(ended) == "Resolved: the stuck run of notebook “Nightly ETL” ended (errored)"


def test_alert_identity_and_severity_survive_the_action_spec():
    """A notify action keeps the message as a dict: the alert id, application and severity a
    paging tool needs come back from it."""
    message = firing_message(alert_id="app:nb:errored", application_id="app", severity="warning")
    data = message.to_dict()
    assert (data["alert_id"], data["application_id"], data["severity"]) == (
        "app:nb:errored",
        "app",
        "warning",
    )
    assert AlertMessage.from_dict(data) == message
    assert AlertMessage.from_dict({k: v for k, v in data.items() if k != "severity"}).severity == (
        "error"
    )
