"""The process that carries out one execution: `python -m sandbox.runner WORK_DIR/spec.json`.

It materialises the inputs, runs the notebook in a fresh ipykernel with nbclient (the time limit
counts from the moment the kernel is ready, as Losant excludes set-up), writes the artefacts,
delivers the outputs and records every phase and the outcome in the work directory's state file
for the engine.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import traceback
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import nbformat
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
from nbformat import NotebookNode

from sandbox import artifacts, defaults, environment, outputs
from sandbox.engine import RunSpec, Status
from sandbox.errors import InputError, OutputError
from sandbox.inputs import materialize_inputs
from sandbox.workdir import WorkDir

MIN_CELL_TIMEOUT = 0.001  # seconds; nbclient treats 0 as "no timeout"


@dataclass(frozen=True)
class NotebookResult:
    status: Literal["completed", "errored", "timeout"]
    execution_errors: list[dict[str, str]]
    error_log: str | None


class Run:
    """One execution, recording its progress in the state file as it goes."""

    def __init__(self, spec: RunSpec) -> None:
        self.spec = spec
        self.workdir = WorkDir(spec.work_dir)
        self.state = self.workdir.read_state()

    def reached(self, phase: str) -> None:
        self.state[phase] = datetime.now(UTC).isoformat()
        self.workdir.write_state(self.state)

    def execute(self) -> None:
        workdir = self.workdir
        workdir.create()
        try:
            notebook = nbformat.read(self.spec.notebook_file, as_version=4)
        except Exception as exc:  # noqa: BLE001 - any unreadable upload fails the run clearly
            message = f"The notebook file cannot be read: {exc}"
            self.finish(None, {}, "errored", [{"name": type(exc).__name__, "message": message}])
            return
        try:
            scope = self.spec.output_plan.templates
            context = scope.context()
            render = scope.renderer(context)
            input_info = materialize_inputs(
                self.spec.inputs,
                workdir.input_dir,
                self.spec.relative_to,
                self.spec.files_dir,
                self.spec.fixtures_dir,
                context=context,
                render=render,
            )
        except InputError as exc:
            self.finish(notebook, {}, "errored", [{"name": exc.name, "message": str(exc)}])
            return
        self.reached("inputs_completed_at")
        result = run_notebook(
            notebook,
            env=environment.kernel_environment(os.environ, workdir),
            cwd=workdir.kernel_cwd,
            time_limit=self.spec.max_run_minutes * 60,
        )
        self.reached("notebook_completed_at")
        self.finish(notebook, input_info, result.status, result.execution_errors, result.error_log)

    def finish(
        self,
        notebook: NotebookNode | None,
        input_info: dict[str, dict],
        status: Status,
        errors: list[dict[str, str]],
        error_log: str | None = None,
    ) -> None:
        """Write the artefacts, deliver the outputs and record the outcome."""
        if errors and error_log is None:
            error_log = "\n".join(f"{e['name']}: {e['message']}" for e in errors)
        results_dir = self.workdir.results_dir
        artifacts.write_artifacts(results_dir, notebook, error_log)
        delivered = outputs.deliver(
            self.spec.output_plan,
            self.workdir.output_dir,
            results_dir,
            strict=status == "completed",
        )
        if delivered.error is not None:
            status = "errored"
            errors = [*errors, {"name": OutputError.name, "message": delivered.error}]
            artifacts.add_to_error_log(results_dir, f"{OutputError.name}: {delivered.error}")
        self.state["outcome"] = {
            "status": status,
            "input_info": input_info,
            "outputs": {name: str(path) for name, path in delivered.info.items()},
            "execution_errors": errors,
        }
        self.reached("outputs_completed_at")


def run_notebook(
    notebook: NotebookNode,
    *,
    env: dict[str, str],
    cwd: Path,
    time_limit: float,
) -> NotebookResult:
    """Execute `notebook` in place (outputs are added to its cells) in a fresh kernel."""
    return asyncio.run(_run_notebook(notebook, env, cwd, time_limit))


async def _run_notebook(
    notebook: NotebookNode,
    env: dict[str, str],
    cwd: Path,
    time_limit: float,
) -> NotebookResult:
    # Only ipykernel's own spec for this interpreter: never a user-installed "python3" that may
    # point at another Python, and nothing to install into the environment first.
    kernel_manager = AsyncKernelManager(
        kernel_name=defaults.KERNEL_NAME,
        kernel_spec_manager=KernelSpecManager(kernel_dirs=[]),
    )
    client = NotebookClient(
        notebook,
        km=kernel_manager,
        startup_timeout=int(defaults.KERNEL_START_TIMEOUT),
        allow_errors=False,
    )
    try:
        async with client.async_setup_kernel(env=env, cwd=str(cwd), cleanup_kc=True):
            deadline = time.monotonic() + time_limit

            def remaining(cell: object) -> float:
                return max(deadline - time.monotonic(), MIN_CELL_TIMEOUT)

            # nbclient types the timeout as whole seconds, but uses any number of seconds.
            client.timeout_func = remaining  # type: ignore[assignment]
            index = 0
            try:
                for index, cell in enumerate(notebook.cells):
                    await client.async_execute_cell(
                        cell, index, execution_count=client.code_cells_executed + 1
                    )
            except CellTimeoutError:
                client.shutdown_kernel = "immediate"
                return _timed_out(time_limit, index)
            except CellExecutionError as exc:
                return NotebookResult(
                    "errored", [{"name": exc.ename, "message": exc.evalue}], exc.traceback
                )
            except DeadKernelError as exc:
                client.shutdown_kernel = "immediate"
                message = f"The kernel died while running the notebook: {exc}"
                return NotebookResult(
                    "errored", [{"name": "DeadKernelError", "message": message}], None
                )
    except Exception as exc:  # noqa: BLE001 - e.g. the kernel did not start: the run errors
        return NotebookResult(
            "errored",
            [{"name": type(exc).__name__, "message": f"The kernel could not be run: {exc}"}],
            traceback.format_exc(),
        )
    return NotebookResult("completed", [], None)


def _timed_out(time_limit: float, cell_index: int) -> NotebookResult:
    message = (
        f"The notebook ran out of time: it exceeded its maximum run time of "
        f"{time_limit / 60:g} minutes ({time_limit:g} s) while running cell {cell_index + 1}, "
        "and the kernel was stopped."
    )
    return NotebookResult("timeout", [{"name": "TimeoutError", "message": message}], message)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m sandbox.runner WORK_DIR/spec.json", file=sys.stderr)
        return 2
    Run(RunSpec.from_json(Path(args[0]).read_text())).execute()
    return 0


if __name__ == "__main__":
    sys.exit(main())
