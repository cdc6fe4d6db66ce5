"""The JSON records the API returns, built from what storage keeps.

Stored records hold download links as paths (`/_sandbox/files/...`); they become absolute URLs
here, with the base URL of the request (or of the server, for callbacks), so a sandbox that moves
to another port still hands out working links.
"""

from __future__ import annotations

from typing import Any

from sandbox.downloads import UrlSigner
from sandbox.layout import DataLayout

NOTEBOOK_FIELDS = (
    "id",
    "notebookId",
    "applicationId",
    "creationDate",
    "lastUpdated",
    "name",
    "description",
    "jupyterFileName",
    "imageVersion",
    "inputs",
    "outputs",
)

TERMINAL_STATUSES = frozenset({"completed", "errored", "timeout", "canceled"})


def notebook_record(
    doc: dict[str, Any],
    usage: dict[str, int] | None,
    base_url: str,
    layout: DataLayout,
    signer: UrlSigner,
) -> dict[str, Any]:
    """A `notebook` as the API returns it; `usage` is this period's runs, errors and minutes."""
    record = notebook_fields(doc)
    if "jupyterFileName" in doc:
        relative = layout.relative(layout.notebook_dir(doc["id"]) / doc["jupyterFileName"])
        record["jupyterFileUrl"] = base_url + signer.path_for(relative)
    usage = usage or {}
    record["stats"] = {
        "minutesThisPeriod": usage.get("minutes", 0),
        "runsThisPeriod": usage.get("runs", 0),
        "errorsThisPeriod": usage.get("errors", 0),
    }
    return record


def notebook_fields(doc: dict[str, Any]) -> dict[str, Any]:
    """The stored notebook's fields that the API shows (without its file URL and stats)."""
    return {name: doc[name] for name in NOTEBOOK_FIELDS if name in doc}


def execution_record(doc: dict[str, Any], base_url: str) -> dict[str, Any]:
    """A `notebookExecutionLogs` entry with absolute download URLs."""
    record = dict(doc)
    for info in ("inputInfo", "outputInfo"):
        if info in record:
            record[info] = {
                name: {**entry, "url": base_url + entry["url"]} if "url" in entry else entry
                for name, entry in record[info].items()
            }
    return record
