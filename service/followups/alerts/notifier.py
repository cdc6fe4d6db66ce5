"""Turning alert states into notifications: which messages are owed, what they say, and the
notify actions that send them, each opened once under its deterministic key."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from service import defaults, keys
from service.events.records import ExecutionRecord
from service.followups.actions.dispatcher import ActionDispatcher
from service.followups.alerts.history import NotebookHistory
from service.followups.alerts.state import Alerts, AlertState, Due
from service.followups.messages import (
    AlertMessage,
    Event,
    FailureClass,
    Severity,
    StepFailure,
    execution_facts,
    message_id,
)
from service.followups.pipeline_file.model import AlertSettings

NotebookNames = Callable[[str, str], str | None]  # (application, notebook) -> name
# The pipeline step an execution (Losant's record) failed, with the steps skipped because of it.
StepFailures = Callable[[dict[str, Any]], StepFailure | None]


class AlertNotifier:
    def __init__(
        self,
        alerts: Alerts,
        history: NotebookHistory,
        actions: ActionDispatcher,
        notebook_name: NotebookNames,
        step_failure: StepFailures,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.alerts = alerts
        self.history = history
        self.actions = actions
        self.notebook_name = notebook_name
        self.step_failure = step_failure
        self.clock = clock

    def observe(self, record: ExecutionRecord) -> None:
        """Count a terminal execution in its notebook's history (failure streak, last success)."""
        execution = record.losant or {}
        finished = execution.get("notebookCompletedAt") or execution.get("outputsCompletedAt")
        self.history.record(
            record.application_id,
            record.notebook_id,
            record.id,
            str(record.status),
            finished or "",
            self.clock(),
        )

    def failed(
        self,
        application_id: str,
        notebook_id: str,
        failure: FailureClass,
        execution: dict[str, Any],
        channels: list[str],
        settings: AlertSettings,
        *,
        rule: str | None = None,
    ) -> None:
        """A failure to alert on (raised by `rule`); the first message waits for the alert's
        group_wait."""
        self.alerts.failed(
            application_id,
            notebook_id,
            failure,
            execution,
            channels,
            settings,
            notebook_name=self.notebook_name(application_id, notebook_id),
            rule=rule,
        )

    def completed(
        self,
        application_id: str,
        notebook_id: str,
        execution: dict[str, Any],
        *,
        keep_missing: bool,
        stored: frozenset[FailureClass] | None = None,
    ) -> None:
        """The notebook completed: resolve its alerts (but `missing_callback` when this very
        execution's callback is missing) and send the resolved messages owed. `stored`: the
        classes of the notebook's stored alerts, when the caller just looked them up."""
        keep = (FailureClass.MISSING_CALLBACK,) if keep_missing else ()
        for due in self.alerts.completed(
            application_id, notebook_id, execution, keep=keep, stored=stored
        ):
            self._notify(due)

    def run_ended(
        self, record: ExecutionRecord, stored: frozenset[FailureClass] | None = None
    ) -> None:
        """An execution ended: the notebook's `overdue` alert no longer counts it as stuck, and
        resolves (with its resolved message, when owed) once it counts none. `stored`: as for
        `completed`."""
        execution = record.losant or {"id": record.id}
        for due in self.alerts.run_ended(
            record.application_id, record.notebook_id, execution, stored=stored
        ):
            self._notify(due)

    def notify_completed(
        self,
        action_key: str,
        channels: list[str],
        application_id: str,
        notebook_id: str,
        execution: dict[str, Any],
        severity: Severity,
    ) -> None:
        """A rule's notify action on a completed execution: one message to each channel."""
        for channel in channels:
            key = keys.completed_notice(action_key, channel)
            message = AlertMessage(
                id=message_id(key),
                event=Event.COMPLETED,
                created_at=datetime.now(UTC),
                application_id=application_id,
                notebook_id=notebook_id,
                notebook_name=self.notebook_name(application_id, notebook_id),
                severity=severity,
                **execution_facts(execution),
            )
            self.actions.open(key, "notify", {"channel": channel, "message": message.to_dict()})

    def fire_due(self) -> None:
        """Send the firing messages whose time has come (group_wait, repeat_interval)."""
        for due in self.alerts.fire_due():
            self._notify(due)

    def repair(self) -> None:
        """Open the notifications an alert's state says were sent, if they were never opened
        (a process died between the two writes), looking back ALERT_REPAIR_WINDOW seconds."""
        since = self.clock() - defaults.ALERT_REPAIR_WINDOW
        for alert in self.alerts.all():
            changed = max(alert.last_notified_at or 0, alert.resolved_at or 0)
            if alert.state is AlertState.PENDING or not alert.notifications or changed < since:
                continue
            due = Due(alert, alert.notifications, tuple(alert.channels))
            if alert.state is AlertState.RESOLVED:
                if not alert.send_resolved or alert.resolved_by is None:
                    continue
                due = Due(alert, None, tuple(alert.channels))
            if any(self.actions.get(due.action_key(c)) is None for c in due.channels):
                self._notify(due)

    def _notify(self, due: Due) -> None:
        alert = due.alert
        application_id = alert.application_id or ""
        history = self.history.get(application_id, alert.notebook_id)
        event = Event.RESOLVED if due.number is None else Event.FIRING
        execution = alert.resolved_by if event is Event.RESOLVED else alert.last_execution
        # A resolved message says how long the episode lasted; a firing one, the current streak
        # (of an overdue alert: the runs it counts).
        streak = alert.failures
        if event is Event.FIRING and alert.failure_class is not FailureClass.OVERDUE:
            streak = max(streak, history.consecutive_failures)
        name = alert.notebook_name or self.notebook_name(application_id, alert.notebook_id)
        # The steps its failure skipped, as the run knows them when the message goes out: they
        # raise no alert of their own (a skipped step never runs), this message names them.
        step_failure = self.step_failure(execution or {}) if event is Event.FIRING else None
        for channel in due.channels:
            key = due.action_key(channel)
            message = AlertMessage(
                id=message_id(key),
                event=event,
                created_at=datetime.fromtimestamp(self.clock(), UTC),
                alert_id=alert.id,
                application_id=alert.application_id,
                notebook_id=alert.notebook_id,
                notebook_name=name,
                failure_class=alert.failure_class,
                consecutive_failures=max(streak, 1),
                last_success_at=history.last_success_at,
                last_success_execution_id=history.last_success_execution_id,
                severity=alert.severity,
                step_failure=step_failure,
                **execution_facts(execution or {}),
            )
            spec = {
                "channel": channel,
                "alert": alert.id,
                "episode": alert.episode,
                "message": message.to_dict(),
            }
            self.actions.open(key, "notify", spec)
