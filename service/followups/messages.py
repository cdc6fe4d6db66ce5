"""What an alert says. The facts go into one `AlertMessage`; small named functions phrase them;
one Jinja2 template per channel kind lays them out. A person on call should learn from the
message alone which notebook failed, how, how often, and where its logs are."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from service import defaults
from service.times import duration_text


class Event(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"
    COMPLETED = "completed"
    TEST = "test"


Severity = Literal["critical", "error", "warning", "info"]


class FailureClass(StrEnum):
    """The second half of an alert's identity: how the notebook failed."""

    ERRORED = "errored"
    TIMEOUT = "timeout"
    CANCELED = "canceled"
    MISSING_CALLBACK = "missing_callback"
    OVERDUE = "overdue"


@dataclass(frozen=True)
class ExecutionError:
    name: str
    message: str


@dataclass(frozen=True)
class StepFailure:
    """The pipeline step whose failure an alert is about, and the steps of its run skipped
    because of it: they raise no alert of their own, this one names them."""

    pipeline: str
    run: str
    step: str
    skipped: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StepFailure:
        return cls(**{**data, "skipped": tuple(data.get("skipped", ()))})


@dataclass(frozen=True)
class AlertMessage:
    """Everything a channel may show. `id` stays the same across delivery attempts, so a
    receiver can drop a repeated delivery (it is the webhook-id and the email Message-ID).
    `alert_id` names the alert a firing or resolved message is about: the same on every message
    of it, so a paging tool keeps them on one incident."""

    id: str
    event: Event
    created_at: datetime
    alert_id: str | None = None
    application_id: str | None = None
    notebook_id: str | None = None
    notebook_name: str | None = None
    failure_class: FailureClass | None = None
    execution_id: str | None = None
    status: str | None = None
    queued_at: datetime | None = None
    finished_at: datetime | None = None
    errors: tuple[ExecutionError, ...] = ()
    log_url: str | None = None
    error_log_url: str | None = None
    consecutive_failures: int = 0
    last_success_at: datetime | None = None
    last_success_execution_id: str | None = None
    channel: str | None = None
    severity: Severity = "error"
    step_failure: StepFailure | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (datetimes as ISO 8601): the webhook payload's `data`."""
        data = asdict(self)
        for key, value in data.items():
            if isinstance(value, datetime):
                data[key] = value.isoformat()
        data["errors"] = [asdict(e) for e in self.errors]
        if self.step_failure is not None:
            data["step_failure"]["skipped"] = list(self.step_failure.skipped)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AlertMessage:
        values = dict(data)
        for key in ("created_at", "queued_at", "finished_at", "last_success_at"):
            if values.get(key):
                values[key] = datetime.fromisoformat(values[key])
        values["event"] = Event(values["event"])
        if values.get("failure_class"):
            values["failure_class"] = FailureClass(values["failure_class"])
        values["errors"] = tuple(ExecutionError(**e) for e in values.get("errors", ()))
        if values.get("step_failure"):
            values["step_failure"] = StepFailure.from_dict(values["step_failure"])
        return cls(**values)


def execution_facts(execution: dict[str, Any]) -> dict[str, Any]:
    """The message fields taken from one Losant execution record (camelCase, as `/logs` gives)."""
    outputs = execution.get("outputInfo") or {}
    return {
        "execution_id": execution.get("id") or execution.get("notebookExecutionId"),
        "status": execution.get("status"),
        "queued_at": _parse_time(execution.get("runQueuedAt")),
        "finished_at": _parse_time(
            execution.get("outputsCompletedAt") or execution.get("notebookCompletedAt")
        ),
        "errors": tuple(
            ExecutionError(str(e.get("name", "")), str(e.get("message", "")))
            for e in execution.get("executionErrors") or ()
        ),
        "log_url": _output_url(outputs, "result.log"),
        "error_log_url": _output_url(outputs, "result.error.log"),
    }


def _output_url(outputs: dict[str, Any], name: str) -> str | None:
    info = outputs.get(name)
    return info.get("url") if isinstance(info, dict) and info.get("url") else None


def _parse_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


# -- phrasing -----------------------------------------------------------------------------------

FAILURE_PHRASES = {
    FailureClass.ERRORED: "errored",
    FailureClass.TIMEOUT: "timed out",
    FailureClass.CANCELED: "was canceled",
    FailureClass.MISSING_CALLBACK: "sent no completion callback",
    FailureClass.OVERDUE: "has a run stuck past its deadline",
}


def notebook_label(message: AlertMessage) -> str:
    name = message.notebook_name or message.notebook_id or "unknown notebook"
    return f"“{name}”"


def headline(message: AlertMessage) -> str:
    """One line that says what happened: the Slack text's first line, the email subject."""
    notebook = f"Notebook {notebook_label(message)}"
    overdue = message.failure_class is FailureClass.OVERDUE
    if message.event is Event.FIRING and overdue and message.queued_at:
        stuck = duration_text((message.created_at - message.queued_at).total_seconds())
        return f"{notebook} has a run stuck {message.status or 'queued'} for {stuck}"
    if message.event is Event.FIRING and message.failure_class:
        return f"{notebook} {FAILURE_PHRASES[message.failure_class]}"
    if message.event is Event.RESOLVED and overdue:
        ended = f" ({message.status})" if message.status else ""
        return f"Resolved: the stuck run of notebook {notebook_label(message)} ended{ended}"
    if message.event is Event.RESOLVED:
        return f"Resolved: notebook {notebook_label(message)} completed again"
    if message.event is Event.COMPLETED:
        return f"{notebook} completed"
    return f"Test notification from nbrelay (channel {message.channel})"


def streak(message: AlertMessage) -> str:
    """How bad it is: the number of failures in a row."""
    count = message.consecutive_failures
    if message.failure_class is FailureClass.OVERDUE:
        return "1 run stuck" if count <= 1 else f"{count} runs stuck"
    if count <= 0:
        return "no failure in a row"
    return "1 failure in a row" if count == 1 else f"{count} failures in a row"


def last_success(message: AlertMessage) -> str:
    if not message.last_success_at:
        return "no successful run on record"
    text = f"last success {format_time(message.last_success_at)}"
    if message.last_success_execution_id:
        text += f" (execution {message.last_success_execution_id})"
    return text


def error_lines(message: AlertMessage) -> list[str]:
    """`name: message` for the first few executionErrors, each cut to a readable length."""
    lines = []
    for error in message.errors[: defaults.ALERT_ERRORS_SHOWN]:
        text = clip(" ".join(error.message.split()), defaults.ALERT_ERROR_LENGTH)
        lines.append(f"{error.name}: {text}" if error.name else text)
    hidden = len(message.errors) - defaults.ALERT_ERRORS_SHOWN
    if hidden > 0:
        lines.append(f"… and {hidden} more")
    return lines


def clip(text: str, length: int) -> str:
    """`text` cut to at most `length` characters, the cut marked by an ellipsis."""
    return text if len(text) <= length else text[: length - 1] + "…"


def step_failure_line(message: AlertMessage) -> str | None:
    """Which pipeline step failed, and the steps skipped because of it (alerted on here only)."""
    failure = message.step_failure
    if failure is None:
        return None
    text = f"pipeline {failure.pipeline} run {failure.run}: step {failure.step} failed"
    if failure.skipped:
        text += "; skipped because of it: " + ", ".join(failure.skipped)
    return text


def log_links(message: AlertMessage) -> list[tuple[str, str]]:
    """(label, url) of the run's logs that Losant published in outputInfo."""
    links = [("result.error.log", message.error_log_url), ("result.log", message.log_url)]
    return [(label, url) for label, url in links if url]


def format_time(value: datetime | None) -> str:
    if value is None:
        return "—"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def urgency(message: AlertMessage) -> Severity:
    """The severity a paging tool should give the message: the alert's own while it fires; a
    resolution, a completed run or a test is only information."""
    return message.severity if message.event is Event.FIRING else "info"


def incident_key(message: AlertMessage) -> str:
    """What a paging tool groups messages by: the alert id, so that the first message, the
    reminders and the resolution land on one incident; a one-off message's own id otherwise."""
    return message.alert_id or message.id


def facts(message: AlertMessage) -> dict[str, str]:
    """The message's facts as label -> text, for the channels that show a table (a Teams card,
    Opsgenie's details, PagerDuty's custom details)."""
    found: dict[str, str] = {}
    if message.notebook_id:
        name = message.notebook_name or message.notebook_id
        found["Notebook"] = f"{name} ({message.notebook_id})"
    if message.failure_class:
        found["Failure"] = message.failure_class.value
    if message.execution_id:
        found["Execution"] = message.execution_id
        found["Status"] = message.status or "unknown"
    found["Time"] = format_time(message.finished_at or message.created_at)
    if message.event is Event.FIRING:
        found["Failures"] = streak(message)
        found["History"] = last_success(message)
    elif message.event is Event.RESOLVED and message.consecutive_failures:
        found["Recovered after"] = streak(message)
    return found


def slack_escape(text: Any) -> str:
    """Slack's mrkdwn treats &, < and > as control characters."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# -- layout ---------------------------------------------------------------------------------------

_templates = Environment(
    loader=PackageLoader("service.followups", "templates"),
    undefined=StrictUndefined,
    autoescape=select_autoescape(enabled_extensions=("html.j2",), default=False),
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=False,
)
_templates.globals.update(
    headline=headline,
    streak=streak,
    last_success=last_success,
    error_lines=error_lines,
    log_links=log_links,
    step_failure_line=step_failure_line,
    format_time=format_time,
    Event=Event,
)
_templates.filters["slack"] = slack_escape


def render(template: str, message: AlertMessage) -> str:
    """Lay `message` out with the named template of `service/followups/templates/`."""
    return _templates.get_template(template).render(m=message).strip() + "\n"


def slack_text(message: AlertMessage) -> str:
    return render("slack.txt.j2", message)


def email_subject(message: AlertMessage) -> str:
    return "[nbrelay] " + headline(message)


def email_text(message: AlertMessage) -> str:
    return render("email.txt.j2", message)


def email_html(message: AlertMessage) -> str:
    return render("email.html.j2", message)


def log_text(message: AlertMessage) -> str:
    return " ".join(render("log.txt.j2", message).split())


def webhook_payload(message: AlertMessage) -> dict[str, Any]:
    """The Standard Webhooks payload shape: `type`, `timestamp`, `data`."""
    return {
        "type": f"notebook.alert.{message.event.value}",
        "timestamp": message.created_at.isoformat(),
        "data": {**message.to_dict(), "summary": headline(message)},
    }


def message_id(action_key: str) -> str:
    """A message id derived from the notify action's key: the same on every attempt of one
    delivery, so a receiver can drop a repeated one."""
    return "msg_" + hashlib.sha256(action_key.encode()).hexdigest()[:24]
