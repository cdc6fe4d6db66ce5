"""The one face of pipelines, rules, actions and alerts that the web layer, the CLI and the
workers call.

Decisions are made in `on_terminal`, which the sync calls once per execution that reached a
terminal status (and again, harmlessly, if a worker died while it ran): everything it decides is
opened in the action ledger under a deterministic key before anything is done, then dispatched
to a worker (`perform`). The scheduler's `tick` reloads the pipeline file, hands runs stuck past
their deadline to the rules on `overdue`, dispatches actions that are due (retries after their
backoff) or whose worker died, sends alert messages whose time has come, and repairs what a
process that died between two writes left half done.
"""

from __future__ import annotations

from typing import Any

from service.events.records import ExecutionRecord
from service.followups.actions.dispatcher import ActionDispatcher
from service.followups.actions.ledger import ActionRecord
from service.followups.alerts.deliveries import FailedDeliveries
from service.followups.alerts.notifier import AlertNotifier
from service.followups.alerts.silences import Silence, Silences
from service.followups.alerts.state import Alert, Alerts
from service.followups.alerts.timeline import Episode
from service.followups.messages import StepFailure
from service.followups.overdue import OverdueRuns
from service.followups.pipeline_file.registry import Loaded, PipelineRegistry
from service.followups.pipelines.coordinator import RunCoordinator
from service.followups.pipelines.runs import Run, RunStore
from service.followups.rules import RulesEngine


class Followups:
    def __init__(
        self,
        registry: PipelineRegistry,
        runs: RunStore,
        coordinator: RunCoordinator,
        rules: RulesEngine,
        actions: ActionDispatcher,
        alerts: Alerts,
        notifier: AlertNotifier,
        silences: Silences,
        failed_deliveries: FailedDeliveries,
        overdue: OverdueRuns,
    ) -> None:
        self._registry = registry
        self._runs = runs
        self._coordinator = coordinator
        self._rules = rules
        self._actions = actions
        self._alerts = alerts
        self._notifier = notifier
        self._silences = silences
        self._failed_deliveries = failed_deliveries
        self._overdue = overdue

    # what happens

    def on_terminal(self, record: ExecutionRecord) -> None:
        """React to one execution's terminal status. Safe to call more than once for the same
        execution: every effect is claimed under a key made from it."""
        execution = record.losant or {}
        self._notifier.observe(record)
        # Looked up once for both uses: what the rules may open in between on a completed run
        # is a `missing_callback` alert, which `completed` keeps anyway.
        stored = self._alerts.stored_classes(record.application_id, record.notebook_id)
        self._notifier.run_ended(record, stored)
        loaded = self._registry.current()
        decision = self._rules.decide(loaded, record)
        of_step = self._coordinator.step_ended(record, decision.fallback_retry)
        self._rules.apply(loaded, decision, of_step=of_step)
        if record.status == "completed":
            self._notifier.completed(
                record.application_id,
                record.notebook_id,
                execution,
                keep_missing=decision.missed_callback,
                stored=stored,
            )

    def perform(self, key: str) -> str:
        """Perform the action `key` if it is due and nobody else holds it; returns what happened
        (done, failed, postponed, skipped, lost)."""
        performed = self._actions.perform(key)
        if performed.finished and performed.record is not None:
            self._coordinator.action_finished(performed.record, performed.result, performed.error)
        return performed.outcome

    def tick(self) -> None:
        """The scheduler's part: reload the pipeline file if it changed, act on runs newly past
        their deadline, dispatch due actions, send due alerts; then repair what a process that
        died between two writes left."""
        self._registry.refresh()
        self._overdue.check(self._registry.current())
        self._actions.dispatch_due()
        self._notifier.fire_due()
        self._coordinator.repair()
        self._notifier.repair()

    # what people ask for

    def start_run(self, name: str, params: dict[str, Any], requested_by: str) -> Run:
        """Start a run of pipeline `name`; RunNotFound when the file in force has none."""
        return self._coordinator.start(name, params, requested_by)

    def silence(
        self,
        matcher: Any,
        *,
        ends_at: Any = None,
        duration: Any = None,
        author: Any,
        comment: Any,
    ) -> Silence:
        """Silence the alerts `matcher` names ({notebook|rule|alert: text}) until `ends_at`
        (ISO 8601) or for `duration`; UsageProblem says what is wrong with the input."""
        return self._silences.create(
            matcher, ends_at=ends_at, duration=duration, author=author, comment=comment
        )

    def unsilence(self, silence_id: str, ended_by: str) -> Silence:
        """End a silence now; SilenceNotFound when none is kept under that id."""
        return self._silences.end(silence_id, ended_by)

    def undo_patch(self, key: str) -> str:
        """Open an action that sets back what the patch `key` changed; returns its key."""
        return self._actions.undo_patch(key)

    # what people look at

    def pipeline_file(self) -> Loaded | None:
        """The pipeline file in force (None when none is loaded)."""
        return self._registry.current()

    def runs(self, pipeline: str, limit: int) -> list[Run]:
        """The pipeline's most recent runs, newest first."""
        return self._runs.recent(pipeline, limit)

    def run(self, run_id: str) -> Run:
        """One run; RunNotFound when it is not stored."""
        return self._runs.get(run_id)

    def active_runs(self) -> list[str]:
        """Ids of the runs that have a step still to finish."""
        return self._runs.active()

    def alerts(self) -> list[Alert]:
        return self._alerts.all()

    def alert(self, alert_id: str) -> Alert | None:
        return self._alerts.by_id(alert_id)

    def alert_episodes(self, alert: Alert) -> list[Episode]:
        """The alert's kept episodes with their timelines, newest first."""
        return self._alerts.timeline.episodes(alert.id, alert.episode)

    def silences(self) -> list[Silence]:
        """The silences kept: active ones first, then those that ended."""
        return self._silences.all()

    def silence_by_id(self, silence_id: str) -> Silence:
        """One silence; SilenceNotFound when none is kept under that id."""
        return self._silences.get(silence_id)

    def silenced_by(self, alert: Alert) -> list[Silence]:
        """The silences in force now that silence the alert."""
        return self._silences.matching(alert, self._alerts.clock())

    def alert_step_failure(self, alert: Alert) -> StepFailure | None:
        """The pipeline step the alert's last failure is of, naming the steps skipped because of
        it (their alerts inhibited: this alert speaks for them)."""
        return self._runs.step_failure(alert.last_execution or {})

    def alert_counts(self) -> dict[str, int]:
        """How many alerts are in each state."""
        return self._alerts.count_by_state()

    def alert_notifications(self, alert: Alert) -> list[ActionRecord]:
        """The notify actions of the alert's current episode, in the order they were opened."""
        found = (self._actions.get(key) for key in alert.notice_keys())
        return sorted((r for r in found if r is not None), key=lambda r: r.created_at)

    def failed_deliveries(self) -> list[dict[str, Any]]:
        """Notifications that failed for good, newest first."""
        return self._failed_deliveries.all()

    def actions(self, limit: int, kind: str | None = None) -> list[ActionRecord]:
        """The most recently opened actions (of one kind), newest first."""
        return self._actions.recent(limit, kind)

    def action(self, key: str) -> ActionRecord | None:
        return self._actions.get(key)
