"""Moving pipeline runs along: starting a run, opening the execute action of each step attempt
it waits for, and handing each step the news of its execution (started, ended, could not
start). The run's state machine is `runs`; this module connects it to the action ledger.

A step's execution is the one its execute action started: the id Losant answered, or the one
the action found in `/logs` after the answer was lost (the oldest carrying the action's random
nonce), as the action ledger records it. The marker in an execution's templateContext only says
which action to ask; anyone who may run notebooks can copy it, so an execution the action did
not record is ignored (logged and counted). An execution may end before its action has
recorded it; its end is then handed on by the action, which looks the execution up in the
store once it has recorded its id (the sync stores an execution before it hands it on, so one
of the two always sees the other), and by the scheduler's `repair`, should that worker die in
between.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from service import keys, metrics
from service.events.records import ExecutionRecord
from service.followups.actions.dispatcher import ActionDispatcher
from service.followups.actions.ledger import ActionRecord, ActionState
from service.followups.pipeline_file.model import Retry
from service.followups.pipeline_file.registry import PipelineRegistry
from service.followups.pipelines.runs import (
    Run,
    RunNotFound,
    RunStore,
    advance,
    awaited,
    execution_ended,
    execution_started,
    launch_failed,
    launches,
    new_run,
)
from service.marker import new_nonce

log = logging.getLogger(__name__)


class RunCoordinator:
    def __init__(
        self,
        store: RunStore,
        actions: ActionDispatcher,
        registry: PipelineRegistry,
        *,
        stored: Callable[[str], ExecutionRecord | None],
        fallback_retry: Callable[[ExecutionRecord], Retry | None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`stored(id)` is the execution as the store has it; `fallback_retry(execution)` the
        retry of a rule that matches it, for a step without a retry of its own."""
        self.store = store
        self.actions = actions
        self.registry = registry
        self.stored = stored
        self.fallback_retry = fallback_retry
        self.clock = clock

    def start(self, name: str, params: dict[str, Any], requested_by: str) -> Run:
        """Start a run of the pipeline `name` of the file in force."""
        loaded = self.registry.current()
        pipeline = loaded.file.pipelines.get(name) if loaded else None
        if loaded is None or pipeline is None:
            raise RunNotFound(f"no pipeline named {name!r}")
        run = new_run(
            name, pipeline, params, loaded.file.notebook_reference, requested_by, self.clock()
        )
        advance(run, self.clock())
        self.store.create(run)
        log.info(
            "pipeline %s: run %s started",
            name,
            run.id,
            extra={"event": "run-started", "pipeline": name, "run": run.id},
        )
        self._launch(run, starts_run=True)
        return run

    def step_ended(self, record: ExecutionRecord, fallback: Retry | None) -> bool:
        """An execution carrying a step's marker ended. It moves the step only when it is the
        execution the step's execute action recorded; while that action is still starting it,
        the action hands it on once recorded. Returns whether the execution is (or may yet turn
        out to be) the step's; one that is not is ignored, logged and counted. `fallback` is
        the retry of a rule that matched it, for a step without a retry of its own."""
        step = record.pipeline_step
        if step is None:
            return False
        run_id, step_key, attempt = step.run or "", step.step or "", step.attempt_number
        action = self.actions.get(keys.step_action(run_id, step_key, attempt))
        if action is not None and action.started_execution == record.id:
            try:
                run = self.store.change(
                    run_id,
                    lambda run, now: execution_ended(
                        run, step_key, attempt, record.losant or {}, now, fallback
                    ),
                )
            except RunNotFound:
                log.warning("execution %s names run %s, which is not stored", record.id, run_id)
                return True
            self._launch(run)
            return True
        details = {"execution": record.id, "run": run_id, "step": step_key, "attempt": attempt}
        if action is not None and action.starting:
            log.info(
                "execution %s of run %s step %s ended before its start was recorded; it is "
                "handed on once it is",
                record.id,
                run_id,
                step_key,
                extra=details,
            )
            return True
        log.warning(
            "execution %s carries the marker of run %s step %s attempt %d, but nbrelay did not "
            "start it for that step; ignored",
            record.id,
            run_id,
            step_key,
            attempt,
            extra={"event": "foreign-marker", **details},
        )
        metrics.FOREIGN_MARKERS.labels("step").inc()
        return False

    def action_finished(
        self, record: ActionRecord, result: dict[str, Any] | None, error: str | None
    ) -> None:
        """Tell the run how its step's execute action ended (started an execution, or failed)."""
        pipeline = record.spec.get("pipeline")
        if not pipeline:
            return
        run_id, step, attempt = pipeline["run"], pipeline["step"], pipeline["attempt"]

        def change(run: Run, now: float) -> None:
            if result is not None:
                execution_started(run, step, attempt, result["execution_id"])
            else:
                launch_failed(run, step, attempt, error or "failed", now)

        try:
            self._launch(self.store.change(run_id, change))
        except RunNotFound:
            return
        if result is not None:
            self._hand_on(result["execution_id"])

    def repair(self) -> None:
        """For every active run, open the actions it waits for and hand it the outcome of those
        already finished, and the end of executions already ended (their worker may have died
        before it could)."""
        for run_id in self.store.active():
            try:
                run = self.store.get(run_id)
            except RunNotFound:
                self.store.forget_active(run_id)
                continue
            for launch in launches(run):
                record = self.actions.get(launch.action_key)
                if record is None:
                    self._launch(run)
                    break
                if record.state is ActionState.DONE:
                    self.action_finished(record, record.outcome, None)
                elif record.state is ActionState.FAILED:
                    self.action_finished(record, None, record.error)
            for execution_id in awaited(run):
                self._hand_on(execution_id)

    def _hand_on(self, execution_id: str) -> None:
        """A step's execution may have ended before its action recorded it (its end was not
        taken then): hand the end on now, if the store has it."""
        record = self.stored(execution_id)
        if record is not None and record.is_terminal:
            self.step_ended(record, self.fallback_retry(record))

    def _launch(self, run: Run, *, starts_run: bool = False) -> None:
        """Open (once) the execute action of every attempt the run is waiting for; `starts_run`
        when the run was just started (its first steps are new work)."""
        for launch in launches(run):
            step = run.steps[launch.step]
            spec = {
                "notebook": step.notebook,
                "context": step.context,
                "relative_to": step.relative_to,
                "pipeline": {"run": run.id, "step": launch.step, "attempt": launch.attempt},
                "nonce": new_nonce(),  # kept only if this open claims the action
                "requested_by": f"pipeline {run.pipeline} run {run.id}",
            }
            self.actions.open(
                launch.action_key, "execute", spec, launch.due_at, starts_run=starts_run
            )
