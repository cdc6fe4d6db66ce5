"""Moving pipeline runs along: starting a run, opening the execute action of each step attempt
it waits for, and handing each step the news of its execution (started, ended, could not
start). The run's state machine is `runs`; this module connects it to the action ledger."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from service.followups.actions.dispatcher import ActionDispatcher
from service.followups.actions.ledger import ActionRecord, ActionState
from service.followups.pipeline_file.model import Retry
from service.followups.pipeline_file.registry import PipelineRegistry
from service.followups.pipelines.runs import (
    Run,
    RunNotFound,
    RunStore,
    advance,
    execution_ended,
    execution_started,
    launch_failed,
    launches,
    new_run,
)
from service.marker import Marker

log = logging.getLogger(__name__)


class RunCoordinator:
    def __init__(
        self,
        store: RunStore,
        actions: ActionDispatcher,
        registry: PipelineRegistry,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.actions = actions
        self.registry = registry
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
        self._launch(run)
        return run

    def step_ended(self, step: Marker, execution: dict[str, Any], fallback: Retry | None) -> None:
        """An execution of a step ended; `fallback` is the retry of a rule that matched it, for
        a step without a retry of its own."""
        run_id, step_key, attempt = step.run or "", step.step or "", step.attempt_number
        try:
            run = self.store.change(
                run_id,
                lambda run, now: execution_ended(run, step_key, attempt, execution, now, fallback),
            )
        except RunNotFound:
            log.warning(
                "execution %s names run %s, which is not stored", execution.get("id"), run_id
            )
            return
        self._launch(run)

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
            pass

    def repair(self) -> None:
        """For every active run, open the actions it waits for and hand it the outcome of those
        already finished (their worker may have died before it could)."""
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

    def _launch(self, run: Run) -> None:
        """Open (once) the execute action of every attempt the run is waiting for."""
        for launch in launches(run):
            step = run.steps[launch.step]
            spec = {
                "notebook": step.notebook,
                "context": step.context,
                "relative_to": step.relative_to,
                "pipeline": {"run": run.id, "step": launch.step, "attempt": launch.attempt},
                "requested_by": f"pipeline {run.pipeline} run {run.id}",
            }
            self.actions.open(launch.action_key, "execute", spec, launch.due_at)
