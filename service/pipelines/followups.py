"""What nbrelay does when executions end: advance pipeline runs, apply rules, raise and resolve
alerts; and the actions that follow, performed exactly once.

Decisions are made in `on_terminal`, which the sync calls once per execution that reached a
terminal status (and again, harmlessly, if a worker died while it ran): everything it decides is
opened in the action ledger under a deterministic key before anything is done, then dispatched
to a worker (`perform`). The scheduler's `tick` dispatches actions that are due (retries after
their backoff) or whose worker died, sends alert messages whose time has come, and reloads the
pipeline file.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import redis as redis_lib

from service import defaults, keys, metrics
from service.alerts.history import NotebookHistory
from service.alerts.messages import AlertMessage, Event, FailureClass, execution_facts
from service.alerts.state import Alerts, AlertState, Due
from service.errors import UsageProblem
from service.losant import (
    AmbiguousNotebook,
    BadRequest,
    LosantError,
    NotFound,
    OutcomeUnknown,
)
from service.pipelines.actions import ActionFailed, Performer, message_id
from service.pipelines.ledger import ActionNotFound, ActionRecord, ActionState, Ledger
from service.pipelines.model import ExecuteItem, NotifyItem, PatchItem, RetryItem, Rule
from service.pipelines.registry import Loaded, PipelineRegistry
from service.pipelines.runs import (
    Run,
    RunNotFound,
    RunStore,
    advance,
    execution_ended,
    execution_started,
    execution_variables,
    launch_failed,
    launches,
    new_run,
)
from service.pipelines.templates import TemplateError, evaluate, render

log = logging.getLogger(__name__)

FAILED_DELIVERIES_KEPT = 200
FAILURES = ("errored", "timeout", "canceled")
UNSET = {"description": "", "inputs": []}  # what an absent notebook field is set back to
PERMANENT = (ActionFailed, NotFound, BadRequest, AmbiguousNotebook, UsageProblem, TemplateError)


class Followups:
    def __init__(
        self,
        redis: redis_lib.Redis,
        registry: PipelineRegistry,
        performer_factory: Callable[[Followups], Performer],
        enqueue: Callable[[str, str], None],
        *,
        notebook_name: Callable[[str], str | None] = lambda notebook_id: None,
        retention_days: int = defaults.RETENTION_DAYS,
        action_lease: float = defaults.ACTION_LEASE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`enqueue(kind, key)` hands an action to a worker; `notebook_name` names a notebook
        for messages."""
        self.redis = redis
        self.registry = registry
        self.enqueue = enqueue
        self.notebook_name = notebook_name
        self.clock = clock
        self.ttl = retention_days * 86400
        self.ledger = Ledger(redis, lease=action_lease, ttl_days=retention_days, clock=clock)
        self.runs = RunStore(redis, retention_days=retention_days, clock=clock)
        self.alerts = Alerts(redis, retention_days=retention_days, clock=clock)
        self.history = NotebookHistory(redis, retention_days)
        self.performer = performer_factory(self)

    # -- pipeline runs --------------------------------------------------------------------------

    def start_run(self, name: str, params: dict[str, Any], requested_by: str) -> Run:
        loaded = self._loaded()
        pipeline = loaded.file.pipelines.get(name) if loaded else None
        if pipeline is None:
            raise RunNotFound(f"no pipeline named {name!r}")
        run = new_run(
            name, pipeline, params, loaded.file.notebook_reference, requested_by, self.clock()
        )
        advance(run, self.clock())
        self.runs.create(run)
        log.info(
            "pipeline %s: run %s started",
            name,
            run.id,
            extra={"event": "run-started", "pipeline": name, "run": run.id},
        )
        self._launch(run)
        return run

    def _launch(self, run: Run) -> None:
        """Open (once) the execute action of every attempt the run is waiting for."""
        now = self.clock()
        for launch in launches(run):
            step = run.steps[launch.step]
            spec = {
                "notebook": step.notebook,
                "context": step.context,
                "relative_to": step.relative_to,
                "pipeline": {"run": run.id, "step": launch.step, "attempt": launch.attempt},
                "requested_by": f"pipeline {run.pipeline} run {run.id}",
            }
            self._open(launch.action_key, "execute", spec, launch.due_at, now)

    def _open(self, key: str, kind: str, spec: dict, due_at: float | None, now: float) -> None:
        if self.ledger.open(key, kind, spec, due_at=due_at) and (due_at is None or due_at <= now):
            self.enqueue(kind, key)

    # -- decisions ------------------------------------------------------------------------------

    def on_terminal(
        self, execution: Mapping[str, Any], notebook_id: str, meta: Mapping[str, str] | None = None
    ) -> None:
        """React to one execution's terminal status. Safe to call more than once for the same
        execution: every effect is claimed under a key made from it."""
        execution = dict(execution)
        status = str(execution.get("status"))
        execution_id = str(execution.get("id") or execution.get("notebookExecutionId"))
        finished = execution.get("notebookCompletedAt") or execution.get("outputsCompletedAt")
        self.history.record(notebook_id, execution_id, status, finished or "", self.clock())
        loaded = self._loaded()
        marker = _marker(execution)
        pipeline = marker if marker.get("run") and marker.get("step") else None
        missed = self._missed_callback(execution, meta or {})
        triggers = [status] + (["missing_callback"] if missed else [])
        rules = {
            trigger: self._matching_rules(loaded, notebook_id, trigger, execution) if loaded else []
            for trigger in triggers
        }
        if pipeline is not None:
            fallback = next((rule.retry for _, rule in rules[status] if rule.retry), None)
            self._step_ended(pipeline, execution, fallback)
        for trigger, matching in rules.items():
            for name, rule in matching:
                for index, action in enumerate(rule.actions):
                    key = f"rule:{name}:{index}:{execution_id}:{trigger}"
                    try:
                        self._rule_action(
                            loaded, name, action, key, trigger, execution, notebook_id, pipeline
                        )
                    except TemplateError as exc:
                        log.warning("rule %s: %s", name, exc, extra={"rule": name, "action": key})
                        self.ledger.record_failure(key, _kind(action), {"rule": name}, str(exc))
        if status == "completed":
            keep = (FailureClass.MISSING_CALLBACK,) if missed else ()
            for due in self.alerts.completed(notebook_id, execution, keep=keep):
                self._notify(due)

    def _missed_callback(self, execution: dict[str, Any], meta: Mapping[str, str]) -> bool:
        """Whether nbrelay started this execution and no callback came for it, although it
        ended more than MISSING_CALLBACK_GRACE seconds ago."""
        if not meta.get("requested_by") or int(meta.get("callbacks") or 0) > 0:
            return False
        ended = execution_facts(execution)["finished_at"]
        return (
            ended is not None and self.clock() - ended.timestamp() > defaults.MISSING_CALLBACK_GRACE
        )

    def _matching_rules(
        self, loaded: Loaded, notebook_id: str, status: str, execution: dict[str, Any]
    ) -> list[tuple[str, Rule]]:
        matching = []
        variables = None
        for name, rule in loaded.file.rules.items():
            if status not in rule.statuses or loaded.notebook_id(rule.notebook) != notebook_id:
                continue
            if rule.when is not None:
                variables = variables or self._rule_variables(execution, notebook_id)
                try:
                    if not evaluate(rule.when, {**variables, "rule": name}):
                        continue
                except TemplateError as exc:
                    log.warning("rule %s: %s", name, exc, extra={"rule": name})
                    key = f"rule:{name}:when:{execution.get('id')}:{status}"
                    self.ledger.record_failure(key, "condition", {"rule": name}, str(exc))
                    continue
            matching.append((name, rule))
        return matching

    def _rule_variables(self, execution: dict[str, Any], notebook_id: str) -> dict[str, Any]:
        return {
            "execution": execution_variables(execution),
            "notebook": {"id": notebook_id, "name": self.notebook_name(notebook_id)},
        }

    def _rule_action(
        self,
        loaded: Loaded,
        rule: str,
        action: Any,
        key: str,
        trigger: str,
        execution: dict[str, Any],
        notebook_id: str,
        pipeline: dict[str, Any] | None,
    ) -> None:
        now = self.clock()
        variables = {**self._rule_variables(execution, notebook_id), "rule": rule}
        if isinstance(action, ExecuteItem):
            spec = {
                "notebook": loaded.file.notebook_reference(action.execute.notebook),
                "context": render(action.execute.context, variables, "context"),
                "relative_to": render(action.execute.relative_to, variables, "relative_to"),
                "marker": {"action": key},
                "requested_by": f"rule {rule}",
            }
            self._open(key, "execute", spec, None, now)
        elif isinstance(action, PatchItem):
            spec = {
                "notebook": loaded.file.notebook_reference(action.patch.notebook),
                "set": render(action.patch.set, variables, "set"),
                "inputs": render(action.patch.inputs, variables, "inputs"),
            }
            self._open(key, "patch", spec, None, now)
        elif isinstance(action, RetryItem) and pipeline is None and trigger in FAILURES:
            self._retry(rule, action, execution, notebook_id, now)
        elif isinstance(action, NotifyItem):
            failure = FailureClass(trigger) if trigger != "completed" else None
            if failure is None:
                self._notify_completed(key, action.notify, execution, notebook_id)
            else:
                self.alerts.failed(
                    notebook_id,
                    failure,
                    execution,
                    action.notify,
                    loaded.file.alerts,
                    notebook_name=self.notebook_name(notebook_id),
                )

    def _retry(
        self, rule: str, action: RetryItem, execution: dict[str, Any], notebook_id: str, now: float
    ) -> None:
        marker = _marker(execution)
        attempt = marker.get("attempt") if isinstance(marker.get("attempt"), int) else 1
        if attempt >= action.retry.max_attempts:
            return
        source = str(execution.get("id"))
        key = f"retry:{source}:{execution.get('status')}"
        spec = {
            "notebook": notebook_id,
            "context": _user_context(execution),
            "relative_to": execution.get("executionRelativeTo"),
            "marker": {"action": key, "rule": rule, "retry_of": source, "attempt": attempt + 1},
            "requested_by": f"rule {rule} (retry {attempt + 1} of {action.retry.max_attempts})",
        }
        self._open(key, "retry", spec, now + action.retry.delay_before(attempt + 1), now)

    def _step_ended(
        self, pipeline: dict[str, Any], execution: dict[str, Any], fallback: Any
    ) -> None:
        attempt = pipeline.get("attempt") if isinstance(pipeline.get("attempt"), int) else 1
        try:
            run = self.runs.change(
                pipeline["run"],
                lambda run, now: execution_ended(
                    run, pipeline["step"], attempt, execution, now, fallback
                ),
            )
        except RunNotFound:
            log.warning(
                "execution %s names run %s, which is not stored",
                execution.get("id"),
                pipeline["run"],
            )
            return
        self._launch(run)

    # -- alerts ---------------------------------------------------------------------------------

    def _notify(self, due: Due) -> None:
        alert = due.alert
        history = self.history.get(alert.notebook_id)
        event = Event.RESOLVED if due.number is None else Event.FIRING
        execution = alert.resolved_by if event is Event.RESOLVED else alert.last_execution
        # A resolved message says how long the episode lasted; a firing one, the current streak.
        streak = alert.failures
        if event is Event.FIRING:
            streak = max(streak, history.consecutive_failures)
        for channel in due.channels:
            key = due.action_key(channel)
            message = AlertMessage(
                id=message_id(key),
                event=event,
                created_at=datetime.now(UTC),
                notebook_id=alert.notebook_id,
                notebook_name=alert.notebook_name or self.notebook_name(alert.notebook_id),
                failure_class=alert.failure_class,
                consecutive_failures=max(streak, 1),
                last_success_at=history.last_success_at,
                last_success_execution_id=history.last_success_execution_id,
                **execution_facts(execution or {}),
            )
            spec = {"channel": channel, "alert": alert.id, "message": message.to_dict()}
            self._open(key, "notify", spec, None, self.clock())

    def _notify_completed(
        self, key: str, channels: list[str], execution: dict[str, Any], notebook_id: str
    ) -> None:
        for channel in channels:
            channel_key = f"{key}:{channel}"
            message = AlertMessage(
                id=message_id(channel_key),
                event=Event.COMPLETED,
                created_at=datetime.now(UTC),
                notebook_id=notebook_id,
                notebook_name=self.notebook_name(notebook_id),
                **execution_facts(execution),
            )
            spec = {"channel": channel, "message": message.to_dict()}
            self._open(channel_key, "notify", spec, None, self.clock())

    def undo_patch(self, key: str) -> str:
        """Open an action that sets back what the patch `key` changed; returns its key."""
        record = self.ledger.get(key)
        if record is None:
            raise ActionNotFound(f"no action {key}")
        if record.kind != "patch" or record.state is not ActionState.DONE or not record.outcome:
            raise UsageProblem(f"action {key} is not a patch that was applied")
        undo = f"undo:{key}"
        # Losant cannot unset a field: one the notebook did not have is set back to empty.
        before = {
            field: UNSET.get(field) if value is None else value
            for field, value in record.outcome["before"].items()
            if value is not None or field in UNSET
        }
        spec = {"notebook": record.outcome["notebook_id"], "set": before}
        self._open(undo, "patch", spec, None, self.clock())
        return undo

    def record_delivery_failure(self, failure: dict[str, Any]) -> None:
        pipe = self.redis.pipeline()
        pipe.lpush(keys.deliveries_failed(), json.dumps(failure))
        pipe.ltrim(keys.deliveries_failed(), 0, FAILED_DELIVERIES_KEPT - 1)
        pipe.expire(keys.deliveries_failed(), self.ttl)
        pipe.execute()

    def failed_deliveries(self) -> list[dict[str, Any]]:
        return [json.loads(raw) for raw in self.redis.lrange(keys.deliveries_failed(), 0, -1)]

    # -- performing -----------------------------------------------------------------------------

    def perform(self, key: str) -> str:
        """Perform the action `key` if it is due and nobody else holds it; returns what happened."""
        record = self.ledger.get(key)
        outcome = self._perform(key)
        metrics.ACTIONS.labels(record.kind if record else "unknown", outcome).inc()
        return outcome

    def _perform(self, key: str) -> str:
        lease = self.ledger.acquire(key)
        if lease is None:
            return "skipped"
        record = lease.record
        if lease.attempt > defaults.ACTION_MAX_ATTEMPTS:
            error = f"gave up after {lease.attempt - 1} attempts: {record.error}"
            self.ledger.fail(lease, error)
            self._after(record, None, error)
            return "failed"
        handler = {
            "execute": self.performer.execute,
            "retry": self.performer.execute,
            "patch": self.performer.patch,
            "notify": self.performer.notify,
        }[record.kind]
        try:
            outcome = handler(lease)
        except PERMANENT as exc:
            error = _message(exc)
            self.ledger.fail(lease, error)
            log.warning("action %s failed: %s", key, error, extra={"action": key})
            self._after(record, None, error)
            return "failed"
        except (LosantError, OSError) as exc:
            delay = min(
                defaults.ACTION_RETRY_BASE * 2 ** (lease.attempt - 1), defaults.ACTION_RETRY_MAX
            )
            if isinstance(exc, OutcomeUnknown):
                delay = max(delay, defaults.ACTION_UNKNOWN_WAIT)
            self.ledger.postpone(lease, delay, _message(exc))
            log.warning(
                "action %s will be tried again in %gs: %s", key, delay, _message(exc),
                extra={"action": key},
            )  # fmt: skip
            return "postponed"
        if self.ledger.complete(lease, outcome):
            self._after(record, outcome, None)
            return "done"
        return "lost"

    def _after(self, record: ActionRecord, outcome: dict | None, error: str | None) -> None:
        """Tell the pipeline run how its step's execute action ended."""
        pipeline = record.spec.get("pipeline")
        if not pipeline:
            return
        run_id, step, attempt = pipeline["run"], pipeline["step"], pipeline["attempt"]
        if outcome is not None:
            change = lambda run, now: execution_started(run, step, attempt, outcome["execution_id"])  # noqa: E731
        else:
            change = lambda run, now: launch_failed(run, step, attempt, error or "failed", now)  # noqa: E731
        try:
            self._launch(self.runs.change(run_id, change))
        except RunNotFound:
            pass

    # -- the scheduler's part -------------------------------------------------------------------

    def tick(self) -> None:
        """Reload the pipeline file if it changed, dispatch due actions, send due alerts; then
        repair what a process that died between two writes left half done."""
        self.registry.refresh()
        for key in self.ledger.dispatch_due():
            record = self.ledger.get(key)
            if record is not None:
                self.enqueue(record.kind, key)
        for due in self.alerts.fire_due():
            self._notify(due)
        for run_id in self.runs.active():
            try:
                self._reconcile_run(self.runs.get(run_id))
            except RunNotFound:
                self.redis.zrem(keys.active_runs(), run_id)
        self._reconcile_alerts()

    def _reconcile_run(self, run: Run) -> None:
        """Open the actions the run waits for; hand it the outcome of those already finished
        (their worker may have died before it could)."""
        for launch in launches(run):
            record = self.ledger.get(launch.action_key)
            if record is None:
                self._launch(run)
                return
            if record.state is ActionState.DONE:
                self._after(record, record.outcome, None)
            elif record.state is ActionState.FAILED:
                self._after(record, None, record.error)

    def _reconcile_alerts(self) -> None:
        """Open the notifications an alert's state says were sent, if they were never opened
        (looking back ALERT_REPAIR_WINDOW seconds)."""
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
            if any(self.ledger.get(due.action_key(c)) is None for c in due.channels):
                self._notify(due)

    def _loaded(self) -> Loaded | None:
        return self.registry.current()


def _marker(execution: Mapping[str, Any]) -> dict[str, Any]:
    context = execution.get("templateContext")
    try:
        value = json.loads(context) if isinstance(context, str) else context
    except ValueError:
        return {}
    marker = value.get("nbrelay") if isinstance(value, dict) else None
    return marker if isinstance(marker, dict) else {}


def _user_context(execution: Mapping[str, Any]) -> dict[str, Any] | None:
    context = execution_variables(dict(execution))["context"]
    return context if isinstance(context, dict) and context else None


def _kind(action: Any) -> str:
    return next(kind for kind in ("execute", "patch", "retry", "notify") if hasattr(action, kind))


def _message(exc: Exception) -> str:
    return " ".join(str(exc).split())[:500] or type(exc).__name__
