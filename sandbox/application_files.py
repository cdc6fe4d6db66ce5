"""The application's files folder, the sandbox's stand-in for Losant's Application Files.

`applicationFile` inputs read from it; `file`, `directory` and `executionResult` outputs are
copied into it (`save`), each recording whether its output made it private
(`destinationPrivate`). `GET /_sandbox/applications/<applicationId>/files/<path>` serves a file:
a public one to anyone, a private one (or one no output wrote, e.g. copied there by hand) only
with the API token.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from flask import Blueprint, current_app, g, send_file
from flask.typing import ResponseReturnValue

from sandbox import ids
from sandbox.downloads import content_type
from sandbox.errors import NotFound, Unauthorized, ValidationFailed
from sandbox.layout import resolve_inside
from sandbox.storage import Storage

ROUTE = "/_sandbox/applications/<application_id>/files/<path:file_path>"


def save(
    storage: Storage,
    application_id: str,
    files_dir: Path,
    source: Path,
    target: Path,
    private: bool,
) -> None:
    """Copy `source` to `target` (inside `files_dir`) and record its privacy."""
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    relative = target.relative_to(files_dir.resolve()).as_posix()
    storage.record_application_file(application_id, relative, private)


blueprint = Blueprint("application_files", __name__)


@blueprint.get(ROUTE)
def download(application_id: str, file_path: str) -> ResponseReturnValue:
    if not ids.is_object_id(application_id):
        raise ValidationFailed("applicationId must be a 24-character hexadecimal id")
    services = current_app.extensions["sandbox"]
    application_id = application_id.lower()
    files_dir = services.layout.application_files(application_id)
    target = resolve_inside(files_dir, file_path)
    if target is None or not target.is_file():
        raise NotFound("File was not found")
    relative = target.relative_to(files_dir.resolve()).as_posix()
    private = services.storage.application_file_private(application_id, relative)
    if private is not False and not g.authorized:
        raise Unauthorized("A valid bearer token is required for a private file")
    return send_file(target, mimetype=content_type(target.name), max_age=0)
