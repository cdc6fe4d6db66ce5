"""Signed download URLs for files in the data folder: uploaded notebooks, run inputs and outputs,
input data exports.

Like Losant's storage URLs they work without the bearer token (a browser can open `result.html`
from an alert), so each carries an HMAC of its path made with a key kept in the data folder.
"""

from __future__ import annotations

import hashlib
import hmac
import mimetypes
from pathlib import Path
from urllib.parse import quote

from flask import Blueprint, current_app, request, send_file
from flask.typing import ResponseReturnValue

from sandbox.errors import NotFound
from sandbox.layout import DataLayout

PREFIX = "/_sandbox/files/"

CONTENT_TYPES = {
    ".ipynb": "application/x-ipynb+json",
    ".log": "text/plain",
    ".csv": "text/csv",
    ".json": "application/json",
    ".html": "text/html",
    ".zip": "application/zip",
}


def content_type(name: str) -> str:
    suffix = Path(name).suffix.lower()
    return CONTENT_TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"


class UrlSigner:
    """Turns a path inside the data folder into a URL path with a signature, and checks one."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def signature(self, relative: str) -> str:
        return hmac.new(self._key, relative.encode(), hashlib.sha256).hexdigest()[:32]

    def path_for(self, relative: str) -> str:
        """The URL path (no host) that serves `relative`."""
        return f"{PREFIX}{quote(relative)}?signature={self.signature(relative)}"

    def valid(self, relative: str, signature: str) -> bool:
        return hmac.compare_digest(self.signature(relative), signature)


blueprint = Blueprint("downloads", __name__)


@blueprint.get(PREFIX + "<path:relative>")
def download(relative: str) -> ResponseReturnValue:
    signer: UrlSigner = current_app.extensions["sandbox"].signer
    layout: DataLayout = current_app.extensions["sandbox"].layout
    if not signer.valid(relative, request.args.get("signature", "")):
        raise NotFound("File was not found")
    path = layout.root / relative
    if not path.is_file():
        raise NotFound("File was not found")
    return send_file(path.resolve(), mimetype=content_type(path.name), max_age=0)


def file_entry(layout: DataLayout, signer: UrlSigner, path: Path) -> dict[str, object]:
    """`{size, url, contentType}` of a file in the data folder, as `inputInfo`/`outputInfo`
    entries carry it (the URL is a path here; records make it absolute)."""
    return {
        "size": path.stat().st_size,
        "url": signer.path_for(layout.relative(path)),
        "contentType": content_type(path.name),
    }
