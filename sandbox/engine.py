"""Runs one notebook execution in a process of its own and reports on it without ever blocking.

`start_run` writes the run's spec into its work directory and starts `python -m sandbox.runner`
in a new session. The runner materialises the inputs, executes the notebook in a fresh kernel,
writes the artefacts, delivers the outputs (`sandbox.outputs`) and records each phase in the work
directory's state file (`sandbox.workdir`). The `RunHandle` only reads that file and polls the
process, so a hung kernel or runner can never hold up the caller; it kills the whole process tree
on `cancel()` or when the runner overruns its time limit by more than `defaults.RUN_OVERHEAD`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import psutil

from sandbox import artifacts, defaults, environment, outputs
from sandbox.errors import OutputError
from sandbox.workdir import WorkDir

Status = Literal["completed", "errored", "timeout", "canceled"]
PHASES = ("started_at", "inputs_completed_at", "notebook_completed_at", "outputs_completed_at")


@dataclass(frozen=True)
class RunSpec:
    """Everything a run needs; serialised to the runner as JSON."""

    execution_id: str
    notebook_file: Path
    work_dir: Path
    inputs: list[dict]
    relative_to: datetime
    max_run_minutes: float
    files_dir: Path
    fixtures_dir: Path
    output_plan: outputs.OutputPlan  # its `templates` render the inputs too

    def to_json(self) -> str:
        return json.dumps(
            {
                "execution_id": self.execution_id,
                "notebook_file": str(self.notebook_file),
                "work_dir": str(self.work_dir),
                "inputs": self.inputs,
                "relative_to": self.relative_to.isoformat(),
                "max_run_minutes": self.max_run_minutes,
                "files_dir": str(self.files_dir),
                "fixtures_dir": str(self.fixtures_dir),
                "output_plan": self.output_plan.to_json(),
            }
        )

    @classmethod
    def from_json(cls, text: str) -> RunSpec:
        raw = json.loads(text)
        paths = ("notebook_file", "work_dir", "files_dir", "fixtures_dir")
        return cls(
            **{
                **raw,
                **{key: Path(raw[key]) for key in paths},
                "relative_to": datetime.fromisoformat(raw["relative_to"]),
                "output_plan": outputs.OutputPlan.from_json(raw["output_plan"]),
            }
        )


@dataclass(frozen=True)
class RunProgress:
    started_at: datetime | None
    inputs_completed_at: datetime | None
    notebook_completed_at: datetime | None
    outputs_completed_at: datetime | None


@dataclass(frozen=True)
class RunOutcome:
    status: Status
    started_at: datetime | None
    inputs_completed_at: datetime | None
    notebook_completed_at: datetime | None
    outputs_completed_at: datetime | None
    input_info: dict[str, dict]
    outputs: dict[str, Path]
    execution_errors: list[dict]


class RunHandle:
    """A running execution. Thread-safe: the API and the run loop may poll and cancel at once."""

    def __init__(self, spec: RunSpec, process: subprocess.Popen, workdir: WorkDir) -> None:
        self.pid = process.pid
        self._spec = spec
        self._process = process
        self._workdir = workdir
        self._kill_after = time.monotonic() + spec.max_run_minutes * 60 + defaults.RUN_OVERHEAD
        self._lock = threading.Lock()
        self._canceled = False
        self._overran = False
        self._outcome: RunOutcome | None = None

    def progress(self) -> RunProgress:
        """The phase timestamps the runner has reached so far."""
        state = self._workdir.read_state()
        return RunProgress(**{phase: _parse_time(state.get(phase)) for phase in PHASES})

    def poll(self) -> RunOutcome | None:
        """The outcome once the runner has exited, else None. Never blocks."""
        with self._lock:
            if self._outcome is not None:
                return self._outcome
            if self._process.poll() is None:
                if not (self._canceled or self._overran) and time.monotonic() > self._kill_after:
                    self._overran = True
                    self._kill()
                return None
            self._outcome = self._conclude()
            return self._outcome

    def cancel(self) -> None:
        """Kill the runner, the kernel and whatever the notebook started. A run that has
        already finished keeps its outcome."""
        with self._lock:
            if self._outcome is not None or self._canceled or self._process.poll() is not None:
                return
            self._canceled = True
            self._kill()

    def _kill(self) -> None:
        """SIGKILL the runner's session and every descendant's process group: the kernel runs in
        a session of its own, and the notebook may have started processes in it."""
        try:
            descendants = psutil.Process(self.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            descendants = []
        groups = {self.pid}
        for process in descendants:
            try:
                groups.add(os.getpgid(process.pid))
            except ProcessLookupError:
                continue
        groups.discard(os.getpgid(0))  # never the caller's own group
        for group in groups:
            try:
                os.killpg(group, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for process in descendants:
            try:
                process.kill()
            except psutil.NoSuchProcess:
                pass

    def _conclude(self) -> RunOutcome:
        state = self._workdir.read_state()
        if self._canceled:
            return self._outcome_from(state, "canceled", outputs={}, errors=[])
        if self._overran:
            message = (
                f"The run exceeded its time limit of {self._spec.max_run_minutes:g} minutes "
                f"(plus {defaults.RUN_OVERHEAD:g} s for inputs and start-up) and was "
                "stopped."
            )
            return self._failure(state, "timeout", "TimeoutError", message)
        if "outcome" in state:
            recorded = state["outcome"]
            return self._outcome_from(
                state,
                recorded["status"],
                input_info=recorded["input_info"],
                outputs={k: self._workdir.root / v for k, v in recorded["outputs"].items()},
                errors=recorded["execution_errors"],
            )
        message = (
            f"The runner process exited with status {self._process.returncode} before the run "
            f"finished. {_last_line(self._workdir.runner_log)}"
        ).strip()
        return self._failure(state, "errored", "RunnerError", message)

    def _failure(
        self, state: dict[str, Any], status: Status, name: str, message: str
    ) -> RunOutcome:
        """An outcome the runner could not record itself: the engine writes the logs."""
        results = self._workdir.results_dir
        if not (results / artifacts.RESULT_LOG).exists():
            (results / artifacts.RESULT_LOG).write_text("")
        artifacts.write_error_log(results, message)
        errors = [{"name": name, "message": message}]
        delivered = outputs.deliver(
            self._spec.output_plan, self._workdir.output_dir, results, strict=False
        )
        if delivered.error is not None:
            errors.append({"name": OutputError.name, "message": delivered.error})
        now = _now()
        state = {**state, "notebook_completed_at": state.get("notebook_completed_at") or now}
        state["outputs_completed_at"] = now
        return self._outcome_from(state, status, outputs=delivered.info, errors=errors)

    def _outcome_from(
        self,
        state: dict[str, Any],
        status: Status,
        *,
        outputs: dict[str, Path],
        errors: list[dict],
        input_info: dict[str, dict] | None = None,
    ) -> RunOutcome:
        return RunOutcome(
            status=status,
            **{phase: _parse_time(state.get(phase)) for phase in PHASES},
            input_info=input_info or {},
            outputs=outputs,
            execution_errors=errors,
        )


def start_run(spec: RunSpec) -> RunHandle:
    """Start the run in a new process and return at once."""
    workdir = WorkDir(Path(spec.work_dir))
    workdir.create()
    workdir.spec_file.write_text(spec.to_json())
    workdir.write_state({"started_at": _now()})
    with workdir.runner_log.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "sandbox.runner", str(workdir.spec_file)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=workdir.root,
            env=environment.runner_environment(os.environ),
            start_new_session=True,
        )
    return RunHandle(spec, process, workdir)


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _last_line(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except FileNotFoundError:
        return ""
    return lines[-1] if lines else ""
