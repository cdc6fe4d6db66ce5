"""The layout of one execution's directory, and the state file through which the runner process
reports progress to the engine.

A file (replaced atomically) rather than a pipe keeps the parent free of reader threads: it reads
the state only when asked, and a runner that hangs or dies can never block it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class WorkDir:
    """Paths inside an execution's work directory."""

    root: Path

    @property
    def input_dir(self) -> Path:
        """INPUT_DIR of the notebook: the materialised inputs and context.json."""
        return self.root / "input"

    @property
    def output_dir(self) -> Path:
        """OUTPUT_DIR of the notebook: every file the notebook writes here is an output."""
        return self.root / "output"

    @property
    def results_dir(self) -> Path:
        """The generated artefacts (result.ipynb, result.html, result.log, result.error.log)."""
        return self.root / "results"

    @property
    def kernel_cwd(self) -> Path:
        """Working directory of the kernel, so stray relative writes land apart from outputs."""
        return self.root / "workspace"

    @property
    def spec_file(self) -> Path:
        return self.root / "spec.json"

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def runner_log(self) -> Path:
        """stdout/stderr of the runner and the kernel process, for diagnosing the engine itself."""
        return self.root / "runner.log"

    def create(self) -> None:
        for path in (self.input_dir, self.output_dir, self.results_dir, self.kernel_cwd):
            path.mkdir(parents=True, exist_ok=True)

    def read_state(self) -> dict[str, Any]:
        """The last state written, or {} before the first write."""
        try:
            return json.loads(self.state_file.read_text())
        except FileNotFoundError:
            return {}

    def write_state(self, state: dict[str, Any]) -> None:
        """Replace the state file atomically, so a reader never sees half of it."""
        temporary = self.state_file.with_name(f".{self.state_file.name}.{os.getpid()}")
        temporary.write_text(json.dumps(state))
        os.replace(temporary, self.state_file)
