"""Data tables, as far as notebooks need them: `dataTable` outputs import a CSV into one.

A table has a name and columns; its rows are JSON objects with `id`, `createdAt`, `updatedAt` and
a text value per column. `import_csv` follows the output's flags: `truncateExistingTable` removes
every row first, `createMissingColumns` adds the CSV's columns the table lacks (without it they
are left out). Sandbox-only routes create a table and read it back:

- `POST /_sandbox/applications/<applicationId>/data-tables` `{"name", "columns": [...], "id"?}`
- `GET  /_sandbox/applications/<applicationId>/data-tables/<dataTableId>`
- `GET  /_sandbox/applications/<applicationId>/data-tables/<dataTableId>/rows?offset=&limit=`
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any

from flask import Blueprint, current_app, jsonify, request
from flask.typing import ResponseReturnValue

from sandbox import clock, defaults, ids
from sandbox.errors import NotFound, OutputError, ValidationFailed
from sandbox.storage import DataTable, Storage
from sandbox.validation import check, parse_json

COLUMN_NAME = re.compile(r"^[0-9a-zA-Z_-]{1,255}$")
NEW_TABLE = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "pattern": "^[A-Fa-f0-9]{24}$"},
        "name": {"type": "string", "minLength": 1, "maxLength": 255},
        "columns": {
            "type": "array",
            "maxItems": 1000,
            "uniqueItems": True,
            "items": {"type": "string", "pattern": COLUMN_NAME.pattern},
        },
    },
    "required": ["name"],
    "additionalProperties": False,
}


def import_csv(
    storage: Storage,
    application_id: str,
    table_id: str,
    source: Path,
    *,
    create_missing_columns: bool,
    truncate: bool,
) -> None:
    """Load the CSV file `source` into the table; OutputError when the table does not exist or
    the file is not a CSV with a header of valid column names."""
    table = storage.get_data_table(application_id, table_id)
    if table is None:
        raise OutputError(f"data table {table_id} does not exist in the application")
    try:
        with source.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = list(reader.fieldnames or [])
            records = list(reader)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise OutputError(f"{source.name} is not a UTF-8 CSV file: {exc}") from None
    if not header:
        raise OutputError(f"{source.name} has no header row")
    invalid = [name for name in header if not COLUMN_NAME.match(name)]
    if invalid:
        raise OutputError(
            f"{source.name}: column names may only contain letters, digits, _ and -: {invalid}"
        )
    new_columns = [c for c in header if c not in table.columns] if create_missing_columns else []
    columns = [c for c in header if c in table.columns or c in new_columns]
    now = clock.iso(clock.now())
    rows = [
        {
            "id": ids.new_object_id(),
            "createdAt": now,
            "updatedAt": now,
            **{c: record.get(c) or "" for c in columns},
        }
        for record in records
    ]
    storage.import_rows(table, new_columns, rows, truncate)


blueprint = Blueprint("data_tables", __name__, url_prefix="/_sandbox")
TABLES = "/applications/<application_id>/data-tables"


def _storage() -> Storage:
    return current_app.extensions["sandbox"].storage


def _id(value: str, name: str) -> str:
    if not ids.is_object_id(value):
        raise ValidationFailed(f"{name} must be a 24-character hexadecimal id")
    return value.lower()


def _table(application_id: str, table_id: str) -> DataTable:
    table = _storage().get_data_table(
        _id(application_id, "applicationId"), _id(table_id, "dataTableId")
    )
    if table is None:
        raise NotFound("Data table was not found")
    return table


def _table_json(table: DataTable) -> dict[str, Any]:
    return {
        "id": table.id,
        "applicationId": table.application_id,
        "name": table.name,
        "columns": [{"name": c} for c in table.columns],
    }


def _query_int(name: str, default: int, maximum: int) -> int:
    raw = request.args.get(name, str(default))
    if not raw.isdigit() or int(raw) > maximum:
        raise ValidationFailed(f"query.{name}: must be a whole number from 0 to {maximum}")
    return int(raw)


@blueprint.post(TABLES)
def create_table(application_id: str) -> ResponseReturnValue:
    application_id = _id(application_id, "applicationId")
    if _storage().get_application(application_id) is None:
        raise NotFound("Application was not found")
    body = parse_json(request.get_data(cache=False) or b"{}")
    check(NEW_TABLE, body, "body")
    table_id = body["id"].lower() if "id" in body else ids.new_object_id()
    existing = _storage().get_data_table(application_id, table_id)
    table = DataTable(table_id, application_id, body["name"], body.get("columns", []))
    _storage().save_data_table(table)
    return jsonify(_table_json(table)), 200 if existing else 201


@blueprint.get(TABLES + "/<table_id>")
def get_table(application_id: str, table_id: str) -> ResponseReturnValue:
    return jsonify(_table_json(_table(application_id, table_id)))


@blueprint.get(TABLES + "/<table_id>/rows")
def get_rows(application_id: str, table_id: str) -> ResponseReturnValue:
    table = _table(application_id, table_id)
    offset = _query_int("offset", 0, 2**31)
    limit = _query_int("limit", defaults.DATA_TABLE_PAGE, defaults.DATA_TABLE_PAGE)
    items, total = _storage().data_table_rows(table.id, offset, limit)
    return jsonify(
        {"items": items, "count": len(items), "totalCount": total, "offset": offset, "limit": limit}
    )
