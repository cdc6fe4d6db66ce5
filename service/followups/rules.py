"""Rules: what the pipeline file says to do when any execution of a notebook ends a certain way.

A rule names a notebook, the statuses it reacts to (`completed`, `errored`, `timeout`,
`canceled`, `missing_callback` for a run nbrelay started whose callback never came, and
`overdue` for a run still queued or in progress past its deadline) and an optional `when:`
condition; its actions are executes, patches, retries and notifications. Each
action is opened under a key made of the rule, the action's position, the execution and the
trigger, so a transition seen twice acts once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from service import defaults, keys, metrics
from service.events.records import ExecutionRecord
from service.followups.actions.dispatcher import ActionDispatcher
from service.followups.actions.performer import spec_marker
from service.followups.alerts.notifier import AlertNotifier, NotebookNames
from service.followups.messages import FailureClass, execution_facts
from service.followups.pipeline_file.model import (
    ExecuteItem,
    NotifyItem,
    PatchItem,
    Retry,
    RetryItem,
    Rule,
    action_kind,
)
from service.followups.pipeline_file.registry import Loaded
from service.followups.pipeline_file.templates import (
    TemplateError,
    evaluate,
    execution_variables,
    render,
)
from service.marker import Marker, new_nonce, user_context

log = logging.getLogger(__name__)

FAILURES = ("errored", "timeout", "canceled")


@dataclass(frozen=True)
class Decision:
    """The rules that match one terminal execution, by trigger (its status, and
    `missing_callback` when its callback is missing)."""

    record: ExecutionRecord
    matching: dict[str, list[tuple[str, Rule]]] = field(default_factory=dict)

    @property
    def missed_callback(self) -> bool:
        return "missing_callback" in self.matching

    @property
    def fallback_retry(self) -> Retry | None:
        """The retry of the first rule on the execution's status that has one: a pipeline step
        without a retry of its own is retried by it."""
        status = str(self.record.status)
        return next((rule.retry for _, rule in self.matching.get(status, ()) if rule.retry), None)


class RulesEngine:
    def __init__(
        self,
        actions: ActionDispatcher,
        notifier: AlertNotifier,
        notebook_name: NotebookNames,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.actions = actions
        self.notifier = notifier
        self.notebook_name = notebook_name
        self.clock = clock

    def decide(self, loaded: Loaded | None, record: ExecutionRecord) -> Decision:
        """Which rules of the file in force match the execution, on which trigger."""
        triggers = [str(record.status)]
        if self._missed_callback(record):
            triggers.append("missing_callback")
        return Decision(
            record,
            {
                trigger: self._matching(loaded, record, trigger) if loaded else []
                for trigger in triggers
            },
        )

    def decide_overdue(self, loaded: Loaded, record: ExecutionRecord) -> Decision:
        """Which rules of the file in force match an execution found past its deadline."""
        return Decision(record, {"overdue": self._matching(loaded, record, "overdue")})

    def overdue_notebooks(self, loaded: Loaded | None) -> set[str]:
        """The ids of the notebooks that a rule on `overdue` names."""
        if loaded is None:
            return set()
        named = (
            loaded.notebook_id(rule.notebook)
            for rule in loaded.file.rules.values()
            if "overdue" in rule.statuses
        )
        return {notebook_id for notebook_id in named if notebook_id}

    def apply(self, loaded: Loaded | None, decision: Decision, *, of_step: bool) -> None:
        """Open every action of every matching rule. `of_step` says the execution is a pipeline
        step's: its run retries it, never a rule's retry."""
        if loaded is None:
            return
        record = decision.record
        for trigger, matching in decision.matching.items():
            for name, rule in matching:
                for index, action in enumerate(rule.actions):
                    key = keys.rule_action(name, index, record.id, trigger)
                    try:
                        self._act(loaded, name, action, key, trigger, record, of_step)
                    except TemplateError as exc:
                        log.warning("rule %s: %s", name, exc, extra={"rule": name, "action": key})
                        kind = action_kind(action)
                        self.actions.record_failure(key, kind, {"rule": name}, str(exc))

    def _missed_callback(self, record: ExecutionRecord) -> bool:
        """Whether nbrelay started this execution and no callback came for it, although it
        ended more than MISSING_CALLBACK_GRACE seconds ago."""
        meta = record.meta
        if not meta.get("requested_by") or int(meta.get("callbacks") or 0) > 0:
            return False
        ended = execution_facts(record.losant or {})["finished_at"]
        return (
            ended is not None and self.clock() - ended.timestamp() > defaults.MISSING_CALLBACK_GRACE
        )

    def _matching(
        self, loaded: Loaded, record: ExecutionRecord, trigger: str
    ) -> list[tuple[str, Rule]]:
        matching = []
        variables = None
        for name, rule in loaded.file.rules.items():
            if (
                trigger not in rule.statuses
                or loaded.notebook_id(rule.notebook) != record.notebook_id
            ):
                continue
            if rule.when is not None:
                variables = variables or self._variables(record)
                try:
                    if not evaluate(rule.when, {**variables, "rule": name}):
                        continue
                except TemplateError as exc:
                    log.warning("rule %s: %s", name, exc, extra={"rule": name})
                    key = keys.rule_condition(name, record.id, trigger)
                    self.actions.record_failure(key, "condition", {"rule": name}, str(exc))
                    continue
            matching.append((name, rule))
        return matching

    def _variables(self, record: ExecutionRecord) -> dict[str, Any]:
        return {
            "execution": execution_variables(record.losant or {}),
            "notebook": {
                "id": record.notebook_id,
                "name": self.notebook_name(record.application_id, record.notebook_id),
            },
        }

    def _act(
        self,
        loaded: Loaded,
        rule: str,
        action: Any,
        key: str,
        trigger: str,
        record: ExecutionRecord,
        of_step: bool,
    ) -> None:
        variables = {**self._variables(record), "rule": rule}
        execution = record.losant or {}
        if isinstance(action, ExecuteItem):
            spec = {
                "notebook": loaded.file.notebook_reference(action.execute.notebook),
                "context": render(action.execute.context, variables, "context"),
                "relative_to": render(action.execute.relative_to, variables, "relative_to"),
                "marker": Marker(action=key).to_json(),
                "nonce": new_nonce(),
                "requested_by": f"rule {rule}",
            }
            self.actions.open(key, "execute", spec)
        elif isinstance(action, PatchItem):
            spec = {
                "notebook": loaded.file.notebook_reference(action.patch.notebook),
                "set": render(action.patch.set, variables, "set"),
                "inputs": render(action.patch.inputs, variables, "inputs"),
            }
            self.actions.open(key, "patch", spec)
        elif isinstance(action, RetryItem) and not of_step and trigger in FAILURES:
            self._retry(rule, action, record)
        elif isinstance(action, NotifyItem):
            settings = action.notify.settings(loaded.file.alerts)
            if trigger == "completed":
                self.notifier.notify_completed(
                    key,
                    action.notify.channels,
                    record.application_id,
                    record.notebook_id,
                    execution,
                    settings.severity,
                )
            else:
                self.notifier.failed(
                    record.application_id,
                    record.notebook_id,
                    FailureClass(trigger),
                    execution,
                    action.notify.channels,
                    settings,
                    rule=rule,
                )

    def _retry(self, rule: str, action: RetryItem, record: ExecutionRecord) -> None:
        attempt = self._attempt(record)
        if attempt >= action.retry.max_attempts:
            return
        execution = record.losant or {}
        key = keys.retry_action(record.id, str(execution.get("status")))
        context = user_context(execution.get("templateContext"))
        retry = Marker(action=key, rule=rule, retry_of=record.id, attempt=attempt + 1)
        spec = {
            "notebook": record.notebook_id,
            "context": context if isinstance(context, dict) and context else None,
            "relative_to": execution.get("executionRelativeTo"),
            "marker": retry.to_json(),
            "nonce": new_nonce(),
            "requested_by": f"rule {rule} (retry {attempt + 1} of {action.retry.max_attempts})",
        }
        now = self.clock()
        self.actions.open(key, "retry", spec, now + action.retry.delay_before(attempt + 1))

    def _attempt(self, record: ExecutionRecord) -> int:
        """Which run of a retry chain the execution is: the attempt its marker names when it is
        the execution of that marker's retry action (or may yet be: the action is still
        starting it, and the marker is the action's own), else 1. Anyone who may run notebooks
        can copy a marker; one that is not the action's is logged, counted and ignored."""
        marker = record.marker
        if marker is None or marker.action is None or marker.attempt is None:
            return 1
        action = self.actions.get(marker.action)
        if (
            action is not None
            and action.kind == "retry"
            and (expected := spec_marker(action.spec)) is not None
            and expected.matches(marker)
            and (action.started_execution == record.id or action.starting)
        ):
            return marker.attempt_number
        log.warning(
            "execution %s carries the marker of retry %s, but nbrelay did not start it for that "
            "retry; taken as a first run",
            record.id,
            marker.action,
            extra={"event": "foreign-marker", "execution": record.id, "action": marker.action},
        )
        metrics.FOREIGN_MARKERS.labels("retry").inc()
        return 1
