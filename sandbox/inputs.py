"""Materialises a notebook's inputs into INPUT_DIR, as Losant does before a run starts.

Each input becomes one file named by its (rendered) `fileName`:

- `externalUrl`: fetched with a bounded HTTP GET (`sandbox.external_url`);
- `applicationFile`: copied from the application's files folder (`filePath` may never leave it);
- `dataTable`, `deviceData`, `deviceConnectionHistory`, `deviceMetadata`, `eventData`: copied from
  a fixture file when one exists (see `fixture_candidates`), otherwise generated sample data
  (`sandbox.sample_data`) spanning the input's time window.

`context.json` holds the parsed templateContext. Templates in `fileName`, `dataTableId`,
`deviceIds` and `deviceTags[].key` are rendered by the caller's `render` (`sandbox.templates`).
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sandbox import external_url, ids, sample_data
from sandbox.errors import InputError
from sandbox.layout import resolve_inside
from sandbox.templates import Render

CONTEXT_FILE = "context.json"
FILE_NAME = re.compile(r"^(?!\.{1,2}$)[0-9a-zA-Z_.-]{1,255}$")
DATA_INPUT_TYPES = (
    "dataTable",
    "deviceData",
    "deviceConnectionHistory",
    "deviceMetadata",
    "eventData",
)
REQUIRED = {
    "deviceData": ("start", "end"),
    "deviceConnectionHistory": ("start", "end"),
    "deviceMetadata": (),
    "dataTable": ("dataTableId",),
    "eventData": (),
    "externalUrl": ("sourceUrl",),
    "applicationFile": ("filePath",),
}


@dataclass(frozen=True)
class _Sources:
    """Where input data comes from, besides the input's own configuration."""

    relative_to: datetime
    files_dir: Path
    fixtures_dir: Path


def materialize_inputs(
    inputs: list[dict],
    input_dir: Path,
    relative_to: datetime,
    files_dir: Path,
    fixtures_dir: Path,
    *,
    context: Any,
    render: Render,
) -> dict[str, dict]:
    """Write every input file and context.json (the parsed `context`) into `input_dir`; return
    the inputInfo (`{fileName: {"size": bytes}}`). Raises InputError on the first input that
    fails."""
    input_dir.mkdir(parents=True, exist_ok=True)
    (input_dir / CONTEXT_FILE).write_text(json.dumps(context))
    sources = _Sources(_as_utc(relative_to), Path(files_dir), Path(fixtures_dir))
    info: dict[str, dict] = {}
    for position, raw in enumerate(inputs):
        spec = _resolve(raw, render, position)
        name = spec["fileName"]
        if name in info or name == CONTEXT_FILE:
            raise InputError(f"input file name {name!r} is used more than once")
        target = input_dir / name
        _MATERIALIZERS[spec["inputType"]](spec, target, sources)
        info[name] = {"size": target.stat().st_size}
    return info


def fixture_candidates(spec: dict[str, Any], fixtures_dir: Path) -> list[Path]:
    """Fixture files that stand in for a data input, most specific first:
    `<fixtures>/<inputType>/<fileName>`, for data tables `<fixtures>/dataTable/<dataTableId>.csv`,
    then `<fixtures>/<fileName>`."""
    input_type, name = spec["inputType"], spec["fileName"]
    candidates = [fixtures_dir / input_type / name]
    if input_type == "dataTable":
        candidates.append(fixtures_dir / "dataTable" / f"{spec['dataTableId']}.csv")
    candidates.append(fixtures_dir / name)
    return candidates


def time_window(spec: dict[str, Any], relative_to: datetime) -> tuple[datetime, datetime]:
    """The input's window: `start` and `end` are millisecond offsets from the Query Time."""
    for key in ("start", "end"):
        if isinstance(spec[key], bool) or not isinstance(spec[key], int | float):
            raise InputError(f"input {spec['fileName']!r}: {key} must be a number of milliseconds")
    start = relative_to + timedelta(milliseconds=spec["start"])
    end = relative_to + timedelta(milliseconds=spec["end"])
    if start > end:
        raise InputError(
            f"input {spec['fileName']!r}: start ({spec['start']}) is after end ({spec['end']})"
        )
    return start, end


def _resolve(raw: dict, render: Render, position: int) -> dict[str, Any]:
    """A copy of the input with its templates rendered and its identifiers checked."""
    if not isinstance(raw, dict) or raw.get("inputType") not in REQUIRED:
        raise InputError(f"inputs[{position}] has no known inputType")
    label = f"inputs[{position}] ({raw['inputType']})"
    for key in ("fileName", *REQUIRED[raw["inputType"]]):
        if raw.get(key) is None:
            raise InputError(f"{label} has no {key}")
    spec = dict(raw)
    spec["fileName"] = render(str(raw["fileName"]), f"{label} fileName")
    if not FILE_NAME.match(spec["fileName"]):
        raise InputError(
            f"{label} fileName {spec['fileName']!r} may only contain letters, digits, . _ and -"
        )
    if "dataTableId" in raw:
        spec["dataTableId"] = _object_id(
            render(str(raw["dataTableId"]), f"{label} dataTableId"), label
        )
    if raw.get("deviceIds"):
        spec["deviceIds"] = [
            _object_id(render(str(d), f"{label} deviceIds"), label) for d in raw["deviceIds"]
        ]
    if raw.get("deviceTags"):
        spec["deviceTags"] = [
            {**tag, "key": render(str(tag.get("key", "")), f"{label} deviceTags")}
            for tag in raw["deviceTags"]
        ]
    return spec


def _object_id(value: str, label: str) -> str:
    if not ids.is_object_id(value):
        raise InputError(f"{label}: {value!r} is not a 24-character hexadecimal id")
    return value


def _external_url(spec: dict[str, Any], target: Path, sources: _Sources) -> None:
    external_url.download(spec, target)


def _application_file(spec: dict[str, Any], target: Path, sources: _Sources) -> None:
    file_path = str(spec["filePath"])
    label = f"applicationFile input {spec['fileName']!r}"
    source = resolve_inside(sources.files_dir, file_path)
    if source is None:
        raise InputError(f"{label}: filePath {file_path!r} is outside the application's files")
    if not source.is_file():
        raise InputError(f"{label}: application file {file_path!r} does not exist")
    shutil.copyfile(source, target)


def _data_input(spec: dict[str, Any], target: Path, sources: _Sources) -> None:
    for candidate in fixture_candidates(spec, sources.fixtures_dir):
        if candidate.is_file():
            shutil.copyfile(candidate, target)
            return
    rng = sample_data.rng_for(spec, sources.relative_to)
    input_type = spec["inputType"]
    if input_type == "deviceData":
        content = sample_data.device_data(spec, *time_window(spec, sources.relative_to), rng)
    elif input_type == "deviceConnectionHistory":
        content = sample_data.connection_history(spec, *time_window(spec, sources.relative_to), rng)
    elif input_type == "deviceMetadata":
        content = sample_data.device_metadata(spec, sources.relative_to, rng)
    elif input_type == "dataTable":
        content = sample_data.data_table(spec, sources.relative_to, rng)
    else:
        content = sample_data.event_data(spec, sources.relative_to, rng)
    target.write_bytes(content)


_MATERIALIZERS: dict[str, Callable[[dict[str, Any], Path, _Sources], None]] = {
    "externalUrl": _external_url,
    "applicationFile": _application_file,
    **{input_type: _data_input for input_type in DATA_INPUT_TYPES},
}


def _as_utc(when: datetime) -> datetime:
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
