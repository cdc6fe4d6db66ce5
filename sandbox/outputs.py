"""Delivers a run's outputs as its notebook's `outputs` configuration says, after the notebook ran
and its artefacts were written (before `outputsCompletedAt`).

- `executionResult`: an artefact (`result.html`, `result.ipynb`, `result.log`,
  `result.error.log`; the sandbox makes no `result.pdf`) that exists is copied to the application's
  files at `destinationDirectoryTemplate`/`destinationFileNameTemplate` (default: the files
  folder's top, under its own name);
- `file`: `OUTPUT_DIR/<fileName>` is copied there the same way;
- `directory`: the regular files under `OUTPUT_DIR/<directoryName>` are copied into
  `destinationDirectoryTemplate`, keeping their relative paths;
- `dataTable`: the CSV `OUTPUT_DIR/<fileName>` is imported into the data table
  (`sandbox.data_tables`);
- `temporaryUrl`: `OUTPUT_DIR/<fileName>` gets a download URL in `outputInfo`.

Copies honour `destinationPrivate` (`sandbox.application_files`). Names, destinations and
`dataTableId` are templates, rendered like the input templates (`sandbox.templates`: `notebook`,
`execution` and the context).

What `outputInfo` lists follows the sandbox's `--output-info` rule, as Losant does not document
it: `configured` (the default) lists every configured output that was delivered to a file,
keyed by its `fileName` (files of a `directory` output by `<directoryName>/<relative path>`;
`dataTable` outputs are not files and are not listed), `temporary-urls` lists only `temporaryUrl`
outputs, and `all` adds every file of OUTPUT_DIR and every artefact of the run to `configured`.

A configured file the notebook did not write fails a completed run (`errored`, an
`OutputError`); after a failed run it is skipped, as is an artefact the run did not produce. Any
other failure (a template, a destination outside the files folder, a missing data table, a
malformed CSV) fails the run too; outputs before it stay delivered.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sandbox import application_files, artifacts, data_tables, ids, inputs
from sandbox.errors import InputError, OutputError
from sandbox.layout import resolve_inside
from sandbox.storage import Storage
from sandbox.templates import Render, TemplateScope


@dataclass(frozen=True)
class OutputPlan:
    """Everything delivering a run's outputs needs besides the files themselves."""

    outputs: list[dict[str, Any]]
    output_info: str  # one of defaults.OUTPUT_INFO_RULES
    application_id: str
    files_dir: Path
    database: Path
    templates: TemplateScope  # the run's, which its inputs render with too

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "files_dir": str(self.files_dir), "database": str(self.database)}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> OutputPlan:
        return cls(
            **{
                **raw,
                "files_dir": Path(raw["files_dir"]),
                "database": Path(raw["database"]),
                "templates": TemplateScope.from_json(raw["templates"]),
            }
        )


@dataclass
class Delivered:
    """`info`: the files `outputInfo` lists, by name; `error`: why delivery stopped, if it did."""

    info: dict[str, Path] = field(default_factory=dict)
    error: str | None = None


def deliver(plan: OutputPlan, output_dir: Path, results_dir: Path, *, strict: bool) -> Delivered:
    """Deliver every configured output in order, stopping at the first failure. `strict`: a
    configured file the notebook did not write is a failure (else it is skipped)."""
    delivery = _Delivery(plan, output_dir, results_dir, strict)
    try:
        render = _template_renderer(plan)
        for position, raw in enumerate(plan.outputs):
            delivery.one(raw, position, render)
    except OutputError as exc:
        delivery.result.error = str(exc)
    finally:
        delivery.close()
    configured, temporary = delivery.configured, delivery.temporary
    if plan.output_info == "temporary-urls":
        delivery.result.info = dict(temporary)
    elif plan.output_info == "all":
        everything = artifacts.collect_outputs(output_dir, results_dir)
        delivery.result.info = {**everything, **configured, **temporary}
    else:
        delivery.result.info = {**configured, **temporary}
    return delivery.result


def _template_renderer(plan: OutputPlan) -> Render:
    """The templates' renderer (that of the inputs), failing with OutputError."""
    try:
        context = plan.templates.context()
    except InputError as exc:
        raise OutputError(str(exc)) from None
    render = plan.templates.renderer(context)

    def as_output(text: str, what: str) -> str:
        try:
            return render(text, what)
        except InputError as exc:
            raise OutputError(str(exc)) from None

    return as_output


class _Delivery:
    def __init__(self, plan: OutputPlan, output_dir: Path, results_dir: Path, strict: bool):
        self.plan = plan
        self.output_dir = output_dir
        self.results_dir = results_dir
        self.strict = strict
        self.configured: dict[str, Path] = {}
        self.temporary: dict[str, Path] = {}
        self.result = Delivered()
        self._storage: Storage | None = None

    @property
    def storage(self) -> Storage:
        if self._storage is None:
            self._storage = Storage(self.plan.database)
        return self._storage

    def close(self) -> None:
        if self._storage is not None:
            self._storage.close()

    def one(self, raw: dict[str, Any], position: int, render: Render) -> None:
        kind = raw.get("outputType")
        label = f"outputs[{position}] ({kind})"
        if kind == "executionResult":
            name = str(raw.get("fileName"))
            artefact = self.results_dir / name
            if name not in artifacts.RESULT_FILES or not artefact.is_file():
                return
            self._copy(raw, artefact, name, render, label)
        elif kind == "file":
            name = self._name(raw, "fileName", render, label)
            source = self._source(name, label, want_dir=False)
            if source is not None:
                self._copy(raw, source, name, render, label)
        elif kind == "directory":
            name = self._name(raw, "directoryName", render, label)
            source = self._source(name, label, want_dir=True)
            if source is not None:
                self._copy_directory(raw, source, name, render, label)
        elif kind == "dataTable":
            name = self._name(raw, "fileName", render, label)
            source = self._source(name, label, want_dir=False)
            if source is not None:
                table_id = render(str(raw.get("dataTableId", "")), f"{label} dataTableId")
                if not ids.is_object_id(table_id):
                    raise OutputError(f"{label}: {table_id!r} is not a 24-character hexadecimal id")
                data_tables.import_csv(
                    self.storage,
                    self.plan.application_id,
                    table_id.lower(),
                    source,
                    create_missing_columns=bool(raw.get("createMissingColumns")),
                    truncate=bool(raw.get("truncateExistingTable")),
                )
        elif kind == "temporaryUrl":
            name = self._name(raw, "fileName", render, label)
            source = self._source(name, label, want_dir=False)
            if source is not None:
                self.temporary[name] = source
        else:
            raise OutputError(f"outputs[{position}] has no known outputType")

    def _name(self, raw: dict[str, Any], key: str, render: Render, label: str) -> str:
        name = render(str(raw.get(key, "")), f"{label} {key}")
        if not inputs.FILE_NAME.match(name):
            raise OutputError(f"{label} {key} {name!r} may only contain letters, digits, . _ and -")
        return name

    def _source(self, name: str, label: str, *, want_dir: bool) -> Path | None:
        """The file (or folder) the notebook wrote as OUTPUT_DIR/<name>; never a symlink."""
        source = self.output_dir / name
        present = source.is_dir() if want_dir else source.is_file()
        if present and not source.is_symlink():
            return source
        if self.strict:
            what = "folder" if want_dir else "file"
            raise OutputError(f"{label}: the notebook wrote no {what} {name!r} in OUTPUT_DIR")
        return None

    def _destination(self, directory: str, file_name: str, label: str) -> Path:
        target = resolve_inside(self.plan.files_dir, f"{directory.strip('/')}/{file_name}")
        if target is None:
            raise OutputError(
                f"{label}: destination {directory}/{file_name!s} is outside the application's files"
            )
        return target

    def _copy(
        self, raw: dict[str, Any], source: Path, name: str, render: Render, label: str
    ) -> None:
        directory = render(raw.get("destinationDirectoryTemplate", ""), f"{label} destination")
        file_name = render(raw.get("destinationFileNameTemplate", name), f"{label} destination")
        target = self._destination(directory, file_name, label)
        self._save(source, target, raw)
        self.configured[name] = target

    def _copy_directory(
        self, raw: dict[str, Any], source: Path, name: str, render: Render, label: str
    ) -> None:
        directory = render(raw["destinationDirectoryTemplate"], f"{label} destination")
        for path in sorted(source.rglob("*")):
            if path.is_file() and not path.is_symlink():
                relative = path.relative_to(source).as_posix()
                target = self._destination(directory, relative, label)
                self._save(path, target, raw)
                self.configured[f"{name}/{relative}"] = target

    def _save(self, source: Path, target: Path, raw: dict[str, Any]) -> None:
        application_files.save(
            self.storage,
            self.plan.application_id,
            self.plan.files_dir,
            source,
            target,
            bool(raw.get("destinationPrivate")),
        )
