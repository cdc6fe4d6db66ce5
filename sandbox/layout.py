"""Where the sandbox keeps things inside its data folder: one place for every path."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DataLayout:
    """`root/sandbox.db` holds the state; files live beside it.

    - `notebooks/<notebookId>/<jupyterFileName>`: the uploaded .ipynb
    - `applications/<applicationId>/files/`: Application Files (`applicationFile` inputs)
    - `applications/<applicationId>/fixtures/`: sample data for dataTable/device/event inputs
    - `executions/<executionId>/`: a run's working folder (inputs, outputs, result.*)
    - `exports/<notebookId>/<jobId>.zip`: input data exports
    """

    root: Path

    @property
    def database(self) -> Path:
        return self.root / "sandbox.db"

    def notebook_dir(self, notebook_id: str) -> Path:
        return self.root / "notebooks" / notebook_id

    def application_files(self, application_id: str) -> Path:
        return self.root / "applications" / application_id / "files"

    def application_fixtures(self, application_id: str) -> Path:
        return self.root / "applications" / application_id / "fixtures"

    def execution_dir(self, execution_id: str) -> Path:
        return self.root / "executions" / execution_id

    def notebook_exports(self, notebook_id: str) -> Path:
        return self.root / "exports" / notebook_id

    def export_zip(self, notebook_id: str, job_id: str) -> Path:
        return self.notebook_exports(notebook_id) / f"{job_id}.zip"

    def export_work_dir(self, notebook_id: str, job_id: str) -> Path:
        return self.notebook_exports(notebook_id) / job_id

    def url_key(self) -> bytes:
        """The key that signs download URLs, created once so URLs survive restarts."""
        path = self.root / "url-signing.key"
        if not path.exists():
            path.write_bytes(secrets.token_bytes(32))
            path.chmod(0o600)
        return path.read_bytes()

    def relative(self, path: Path) -> str:
        """`path` as a slash-separated path inside the data folder (ValueError when outside)."""
        return path.resolve().relative_to(self.root.resolve()).as_posix()

    def create(self) -> DataLayout:
        for name in ("notebooks", "applications", "executions", "exports"):
            (self.root / name).mkdir(parents=True, exist_ok=True)
        return self


def resolve_inside(root: Path, relative: str) -> Path | None:
    """`relative` (leading slashes ignored) inside the folder `root`, or None when it would
    name `root` itself or leave it."""
    base = root.resolve()
    try:
        target = (base / relative.lstrip("/")).resolve()
    except (OSError, ValueError):
        return None
    if target == base or not target.is_relative_to(base):
        return None
    return target
