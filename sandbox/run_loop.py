"""The run loop: one thread that moves executions queued → inProgress → terminal, for all runs.

Request threads only insert queued executions and post commands; every later status change is
made here (or, for the `canceling` mark, by an atomic conditional update), so no two threads race
over one run. A per-application limit on runs in progress keeps the rest `queued`, in the order
they were requested. Scripted runs are timers in a heap, so thousands a minute cost no process;
real runs are handles of the execution engine (one kernel process each), polled a few times a
second.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import queue
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sandbox import clock, defaults, outputs
from sandbox.behaviours import Behaviour
from sandbox.downloads import UrlSigner, file_entry
from sandbox.guesses import Guesses, GuessSwitch
from sandbox.layout import DataLayout
from sandbox.records import TERMINAL_STATUSES, notebook_fields
from sandbox.storage import ExecutionRow, Storage
from sandbox.templates import TemplateScope
from sandbox.workdir import WorkDir

log = logging.getLogger(__name__)

ACTIVE = ("inProgress", "canceling")
RESTART_ERROR = {
    "name": "SandboxRestarted",
    "message": "The sandbox stopped while this execution was in progress, so it never finished",
}


@dataclass(frozen=True)
class RunLimits:
    """Defaults for applications that set no limits of their own (the run-time limit is a guess:
    `Guesses.maxRunMinutes`)."""

    parallel_runs: int


@dataclass
class _Run:
    execution_id: str
    application_id: str
    notebook_id: str
    script: Behaviour | None
    handle: Any = None  # sandbox.engine.RunHandle of a real run
    due: float | None = None  # monotonic end of a scripted run
    progress: tuple[Any, ...] = ()
    discard: bool = False  # its notebook was deleted: clean up once the kernel is gone


@dataclass(order=True)
class _Timer:
    due: float
    seq: int
    execution_id: str = field(compare=False)


class RunLoop:
    def __init__(
        self,
        storage: Storage,
        layout: DataLayout,
        signer: UrlSigner,
        limits: RunLimits,
        on_terminal: Callable[[ExecutionRow], None],
        poll_interval: float,
        guesses: GuessSwitch,
    ) -> None:
        self._storage = storage
        self._guesses = guesses
        self._layout = layout
        self._signer = signer
        self._limits = limits
        self._on_terminal = on_terminal
        self._poll_interval = poll_interval
        self._commands: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="run-loop", daemon=True)
        # Owned by the run loop thread only:
        self._queued: dict[str, deque[_Run]] = {}
        self._running: dict[str, _Run] = {}
        self._in_progress: dict[str, int] = {}
        self._timers: list[_Timer] = []
        self._seq = itertools.count()

    # called from other threads

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """Stop scheduling and kill running kernels. Their records stay as they are; the next
        start resolves them (see `recover`)."""
        self._command("stop", timeout)
        self._thread.join(timeout + 5)

    def submit(self, row: ExecutionRow, script: Behaviour | None) -> None:
        """A new queued execution; `script` is the notebook's scripted behaviour, if any."""
        self._command("submit", _Run(row.id, row.application_id, row.notebook_id, script))

    def cancel(self, execution_id: str) -> None:
        self._command("cancel", execution_id)

    def discard_notebook(self, notebook_id: str, execution_ids: list[str]) -> None:
        """The notebook was deleted: stop its runs and remove their folders."""
        self._command("discard", notebook_id, execution_ids)

    def recover(self) -> None:
        """Resolve what a previous process left unfinished; call before `start`.

        Runs that were in progress when the sandbox stopped cannot be resumed (their kernels died
        with it): they end `errored` with a `SandboxRestarted` entry in `executionErrors`, or
        `canceled` if a cancel had been requested. Queued runs are scheduled again. Callbacks that
        were not delivered are sent again."""
        now = clock.now()
        for row in self._storage.executions_with_status(ACTIVE):
            if row.status == "canceling":
                changes: dict[str, Any] = {"status": "canceled"}
            else:
                errors = [*row.doc.get("executionErrors", []), RESTART_ERROR]
                changes = {"status": "errored", "executionErrors": errors}
            self._storage.transition(row.id, ACTIVE, changes, finished_at=clock.to_ms(now))
        for row in self._storage.executions_with_status(["queued"]):
            self.submit(row, None)
        for row in self._storage.pending_callbacks():
            self._on_terminal(row)

    def _command(self, *command: Any) -> None:
        self._commands.put(command)
        self._wake.set()

    # the run loop thread

    def _loop(self) -> None:
        while True:
            self._wake.wait(self._wait_time())
            self._wake.clear()
            while True:
                try:
                    command = self._commands.get_nowait()
                except queue.Empty:
                    break
                if command[0] == "stop":
                    self._shutdown(command[1])
                    return
                self._safely(getattr(self, f"_on_{command[0]}"), *command[1:])
            self._safely(self._fire_timers)
            self._safely(self._poll_engine_runs)
            self._safely(self._start_queued)

    def _safely(self, step: Callable[..., None], *args: Any) -> None:
        """One failing step (a full disk, a broken notebook folder) must not stop the thread."""
        try:
            step(*args)
        except Exception:
            log.exception("run loop step %s failed", step.__name__)

    def _wait_time(self) -> float:
        waits = [defaults.IDLE_WAIT]
        if self._timers:
            waits.append(self._timers[0].due - time.monotonic())
        if any(run.handle is not None for run in self._running.values()):
            waits.append(self._poll_interval)
        return max(0.0, min(waits))

    def _on_submit(self, run: _Run) -> None:
        self._queued.setdefault(run.application_id, deque()).append(run)

    def _on_cancel(self, execution_id: str) -> None:
        for runs in self._queued.values():
            for run in runs:
                if run.execution_id == execution_id:
                    runs.remove(run)
                    self._finish(run, {"status": "canceled"})
                    return
        running = self._running.get(execution_id)
        if running is None:
            # Not known here: it was picked up while being marked, or is already gone.
            self._finish(_Run(execution_id, "", "", None), {"status": "canceled"})
        elif running.handle is not None:
            running.handle.cancel()
        else:
            self._finish(running, {"status": "canceled"})

    def _on_discard(self, notebook_id: str, execution_ids: list[str]) -> None:
        for app_id, runs in self._queued.items():
            self._queued[app_id] = deque(r for r in runs if r.notebook_id != notebook_id)
        for run in list(self._running.values()):
            if run.notebook_id != notebook_id:
                continue
            if run.handle is not None:
                run.discard = True
                run.handle.cancel()
            else:
                self._release(run)
        for execution_id in execution_ids:
            if execution_id not in self._running:
                shutil.rmtree(self._layout.execution_dir(execution_id), ignore_errors=True)

    def _start_queued(self) -> None:
        for app_id, runs in self._queued.items():
            limit = self._parallel_runs(app_id) if runs else 0
            while runs and self._in_progress.get(app_id, 0) < limit:
                self._begin(runs.popleft())

    def _parallel_runs(self, application_id: str) -> int:
        application = self._storage.get_application(application_id)
        configured = application.parallel_runs if application else None
        return configured or self._limits.parallel_runs

    def _begin(self, run: _Run) -> None:
        now = clock.now()
        changes: dict[str, Any] = {"status": "inProgress", "runStartedAt": clock.iso(now)}
        if run.script is not None:
            changes["inputsCompletedAt"] = clock.iso(now)
        row = self._storage.transition(run.execution_id, ["queued"], changes)
        if row is None:
            return  # canceled or deleted while queued
        self._running[run.execution_id] = run
        self._in_progress[run.application_id] = self._in_progress.get(run.application_id, 0) + 1
        if run.script is not None:
            run.due = time.monotonic() + run.script.durationSeconds
            heapq.heappush(self._timers, _Timer(run.due, next(self._seq), run.execution_id))
            return
        try:
            run.handle = self._start_engine_run(row)
        except Exception as exc:  # noqa: BLE001 - any failure to start is the run's error
            log.exception("execution %s could not start", run.execution_id)
            self._finish(
                run,
                {
                    "status": "errored",
                    "executionErrors": [{"name": type(exc).__name__, "message": str(exc)}],
                },
            )

    def _start_engine_run(self, row: ExecutionRow) -> Any:
        notebook = self._storage.get_notebook(row.application_id, row.notebook_id)
        if notebook is None:
            raise LookupError("The notebook was deleted")
        if "jupyterFileName" not in notebook:
            raise FileNotFoundError("The notebook has no Jupyter file; upload one first")
        # Imported here: scripted-only workloads never load nbclient and friends.
        from sandbox.engine import RunSpec, start_run

        doc = row.doc
        guesses = self._guesses.current()  # the run keeps these, whatever is switched later
        spec = RunSpec(
            execution_id=row.id,
            notebook_file=self._layout.notebook_dir(row.notebook_id) / notebook["jupyterFileName"],
            work_dir=self._layout.execution_dir(row.id),
            inputs=notebook.get("inputs", []),
            relative_to=datetime.fromisoformat(doc["executionRelativeTo"]),
            max_run_minutes=doc["maxAllowedRunMinutes"],
            files_dir=self._layout.application_files(row.application_id),
            fixtures_dir=self._layout.application_fixtures(row.application_id),
            output_plan=self._output_plan(row, notebook, guesses),
        )
        return start_run(spec)

    def _output_plan(
        self, row: ExecutionRow, notebook: dict[str, Any], guesses: Guesses
    ) -> outputs.OutputPlan:
        return outputs.OutputPlan(
            outputs=notebook.get("outputs", []),
            output_info=guesses.outputInfo,
            application_id=row.application_id,
            files_dir=self._layout.application_files(row.application_id),
            database=self._layout.database,
            templates=TemplateScope(
                row.doc.get("templateContext"),
                notebook_fields(notebook),
                row.doc,
                guesses.templates(),
            ),
        )

    def _fire_timers(self) -> None:
        now = time.monotonic()
        while self._timers and self._timers[0].due <= now:
            timer = heapq.heappop(self._timers)
            run = self._running.get(timer.execution_id)
            if run is not None and run.due == timer.due and run.script is not None:
                self._conclude(run, self._scripted_outcome, run)

    def _scripted_outcome(self, run: _Run) -> dict[str, Any]:
        """The end of a scripted run: its status, timestamps and small result logs, delivered as
        the notebook's outputs say (it writes no other file)."""
        assert run.script is not None and run.script.status is not None
        status = run.script.status
        now = clock.iso(clock.now())
        changes: dict[str, Any] = {"status": status}
        if status != "canceled":
            changes.update(notebookCompletedAt=now, outputsCompletedAt=now)
        errors = {
            "errored": {"name": "ScriptedError", "message": "The scripted run raised an error"},
            "timeout": {"name": "Timeout", "message": "The scripted run exceeded its run time"},
        }
        logs = {"result.log": f"Scripted run {run.execution_id} ended {status}.\n"}
        if status in errors:
            changes["executionErrors"] = [errors[status]]
            logs["result.error.log"] = f"{errors[status]['name']}: {errors[status]['message']}\n"
        workdir = WorkDir(self._layout.execution_dir(run.execution_id))
        workdir.results_dir.mkdir(parents=True, exist_ok=True)
        for name, text in logs.items():
            (workdir.results_dir / name).write_text(text, encoding="utf-8")
        row = self._storage.get_execution(run.execution_id)
        notebook = self._storage.get_notebook(run.application_id, run.notebook_id)
        if row is None or notebook is None:
            return changes
        delivered = outputs.deliver(
            self._output_plan(row, notebook, self._guesses.current()),
            workdir.output_dir,
            workdir.results_dir,
            strict=False,
        )
        if delivered.error is not None:
            problem = {"name": "OutputError", "message": delivered.error}
            changes["executionErrors"] = [*changes.get("executionErrors", []), problem]
        changes["outputInfo"] = self._file_entries(delivered.info)
        return changes

    def _conclude(self, run: _Run, outcome: Callable[..., dict[str, Any]], *args: Any) -> None:
        """Finish a run with the changes `outcome` builds; if building them fails (a full disk),
        the run still ends, `errored`, rather than staying in progress for ever."""
        try:
            changes = outcome(*args)
        except Exception as exc:
            log.exception("could not collect the results of execution %s", run.execution_id)
            problem = {"name": "SandboxError", "message": f"Collecting the results failed: {exc}"}
            changes = {"status": "errored", "executionErrors": [problem]}
        self._finish(run, changes)

    def _poll_engine_runs(self) -> None:
        for run in [r for r in self._running.values() if r.handle is not None]:
            outcome = run.handle.poll()
            if outcome is None:
                self._record_progress(run)
            elif run.discard:
                self._release(run)
                shutil.rmtree(self._layout.execution_dir(run.execution_id), ignore_errors=True)
            else:
                self._conclude(run, self._engine_outcome, run, outcome)

    def _record_progress(self, run: _Run) -> None:
        progress = run.handle.progress()
        seen = (progress.started_at, progress.inputs_completed_at, progress.notebook_completed_at)
        if seen == run.progress:
            return
        run.progress = seen
        self._storage.transition(run.execution_id, ACTIVE, _timestamps(progress))

    def _engine_outcome(self, run: _Run, outcome: Any) -> dict[str, Any]:
        changes: dict[str, Any] = {"status": outcome.status, **_timestamps(outcome)}
        inputs = WorkDir(self._layout.execution_dir(run.execution_id)).input_dir
        linked = self._file_entries({name: inputs / name for name in outcome.input_info})
        changes["inputInfo"] = {
            name: linked.get(name, dict(info)) for name, info in outcome.input_info.items()
        }
        changes["outputInfo"] = self._file_entries(outcome.outputs)
        changes["executionErrors"] = list(outcome.execution_errors)
        return changes

    def _file_entries(self, files: dict[str, Path]) -> dict[str, dict[str, Any]]:
        """Download entries of the regular files among `files` that lie inside the data folder
        (a notebook could leave a symlink to anywhere in OUTPUT_DIR)."""
        entries = {}
        for name, path in files.items():
            try:
                if path.is_file():
                    entries[name] = file_entry(self._layout, self._signer, path)
            except (OSError, ValueError):
                log.warning("not linking %s: it is not a file inside the data folder", name)
        return entries

    def _finish(self, run: _Run, changes: dict[str, Any]) -> None:
        """Record a terminal status, free the run's slot and announce it."""
        self._release(run)
        now = clock.now()
        current = self._storage.get_execution(run.execution_id)
        minutes = notebook_minutes({**current.doc, **changes}, now) if current else 0
        row = self._storage.transition(
            run.execution_id,
            ["queued", *ACTIVE],
            changes,
            finished_at=clock.to_ms(now),
            run_minutes=minutes,
        )
        if row is not None and row.status in TERMINAL_STATUSES:
            self._on_terminal(row)

    def _release(self, run: _Run) -> None:
        if self._running.pop(run.execution_id, None) is not None:
            self._in_progress[run.application_id] -= 1

    def _shutdown(self, timeout: float) -> None:
        engine_runs = [run for run in self._running.values() if run.handle is not None]
        for run in engine_runs:
            run.handle.cancel()
        deadline = time.monotonic() + timeout
        while engine_runs and time.monotonic() < deadline:
            engine_runs = [run for run in engine_runs if run.handle.poll() is None]
            time.sleep(0.05)
        if engine_runs:
            log.warning("%d kernel(s) did not stop within %gs", len(engine_runs), timeout)


def notebook_minutes(doc: dict[str, Any], end: datetime) -> int:
    """The minutes a finished run counts in `notebookMinuteCounts` and `stats`: the time its
    notebook ran, from `inputsCompletedAt` to `notebookCompletedAt` (or `end`, when it was stopped
    before), in whole minutes rounded up, at least one. Set-up (queue, inputs) and tear-down
    (results, outputs) are not counted, as Losant documents; rounding each run up is the
    sandbox's guess. A run that never got past its inputs counts 0."""
    if not doc.get("inputsCompletedAt"):
        return 0
    started = datetime.fromisoformat(doc["inputsCompletedAt"])
    completed = doc.get("notebookCompletedAt")
    stopped = datetime.fromisoformat(completed) if completed else end
    return max(1, math.ceil((stopped - started).total_seconds() / 60))


def _timestamps(progress: Any) -> dict[str, str]:
    """The phases the engine reports; `runStartedAt` stays the one `_begin` recorded, which the
    outputs' templates saw as `execution.runStartedAt`."""
    names = {
        "inputs_completed_at": "inputsCompletedAt",
        "notebook_completed_at": "notebookCompletedAt",
        "outputs_completed_at": "outputsCompletedAt",
    }
    return {
        field_name: clock.iso(value)
        for attribute, field_name in names.items()
        if (value := getattr(progress, attribute, None)) is not None
    }
