"""The sandbox's durable state: applications, notebooks, executions and export jobs in SQLite.

One connection in WAL mode, shared by the request threads and the run loop thread behind a lock:
SQLite serialises writers anyway, and one lock makes every read-modify-write (a status
transition, a notebook patch) atomic without retry loops. Records are kept as the JSON documents
the API returns, beside the few columns that queries sort and filter on.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sandbox import clock, defaults

SCHEMA = """
CREATE TABLE IF NOT EXISTS applications (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    max_run_minutes REAL,
    parallel_runs INTEGER
);
CREATE TABLE IF NOT EXISTS notebooks (
    id TEXT PRIMARY KEY,
    application_id TEXT NOT NULL,
    last_execution_requested INTEGER,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS notebooks_by_application ON notebooks (application_id);
CREATE TABLE IF NOT EXISTS executions (
    id TEXT PRIMARY KEY,
    notebook_id TEXT NOT NULL,
    application_id TEXT NOT NULL,
    status TEXT NOT NULL,
    queued_at INTEGER NOT NULL,
    finished_at INTEGER,
    run_minutes INTEGER NOT NULL DEFAULT 0,
    callback_url TEXT,
    callback_pending INTEGER NOT NULL DEFAULT 0,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS executions_by_notebook ON executions (notebook_id, queued_at, id);
CREATE INDEX IF NOT EXISTS executions_by_status ON executions (status);
CREATE TABLE IF NOT EXISTS application_files (
    application_id TEXT NOT NULL,
    path TEXT NOT NULL,
    private INTEGER NOT NULL,
    PRIMARY KEY (application_id, path)
);
CREATE TABLE IF NOT EXISTS data_tables (
    id TEXT PRIMARY KEY,
    application_id TEXT NOT NULL,
    name TEXT NOT NULL,
    columns TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS data_table_rows (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    table_id TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS data_table_rows_by_table ON data_table_rows (table_id, seq);
CREATE TABLE IF NOT EXISTS exports (
    id TEXT PRIMARY KEY,
    notebook_id TEXT NOT NULL,
    application_id TEXT NOT NULL,
    status TEXT NOT NULL,
    doc TEXT NOT NULL
);
"""


# The executions `/logs?since=` selects under each `logsSince` guess (sandbox.guesses). Dates
# in records are fixed-width ISO 8601 UTC, so they compare as text from 1970 on.
SINCE_FILTERS = {
    "queued": "queued_at >= :since",
    "queuedAfter": "queued_at > :since",
    "started": "json_extract(doc, '$.runStartedAt') >= :since_date",
    "ended": "finished_at >= :since",
}


@dataclass(frozen=True)
class Application:
    id: str
    name: str
    max_run_minutes: float | None
    parallel_runs: int | None


@dataclass(frozen=True)
class ExecutionRow:
    id: str
    notebook_id: str
    application_id: str
    status: str
    callback_url: str | None
    doc: dict[str, Any]


@dataclass(frozen=True)
class DataTable:
    id: str
    application_id: str
    name: str
    columns: list[str]


@dataclass(frozen=True)
class ExportRow:
    id: str
    notebook_id: str
    application_id: str
    status: str
    doc: dict[str, Any]


class Storage:
    """Thread-safe access to `sandbox.db`."""

    def __init__(self, path: Path) -> None:
        self._lock = threading.RLock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(f"PRAGMA busy_timeout={int(defaults.DB_BUSY_TIMEOUT * 1000)}")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _query(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    # applications

    def get_application(self, application_id: str) -> Application | None:
        rows = self._query("SELECT * FROM applications WHERE id = ?", [application_id])
        return _application(rows[0]) if rows else None

    def save_application(
        self,
        application_id: str,
        name: str | None,
        created_at: int,
        settings: dict[str, Any],
    ) -> tuple[Application, bool]:
        """Create the application or update the given fields; returns it and whether it is new.

        `settings` may hold `max_run_minutes` and `parallel_runs` (None clears one)."""
        with self._transaction() as db:
            row = db.execute("SELECT * FROM applications WHERE id = ?", [application_id]).fetchone()
            current = (
                _application(row)
                if row
                else Application(
                    application_id, name or f"Application {application_id}", None, None
                )
            )
            updated = Application(
                application_id,
                name or current.name,
                settings.get("max_run_minutes", current.max_run_minutes),
                settings.get("parallel_runs", current.parallel_runs),
            )
            db.execute(
                "INSERT INTO applications (id, name, created_at, max_run_minutes, parallel_runs)"
                " VALUES (:id, :name, :created_at, :max_run_minutes, :parallel_runs)"
                " ON CONFLICT (id) DO UPDATE SET name = :name,"
                " max_run_minutes = :max_run_minutes, parallel_runs = :parallel_runs",
                {**asdict(updated), "created_at": created_at},
            )
        return updated, row is None

    # notebooks

    def insert_notebook(self, doc: dict[str, Any]) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO notebooks (id, application_id, doc) VALUES (?, ?, ?)",
                [doc["id"], doc["applicationId"], _dump(doc)],
            )

    def get_notebook(self, application_id: str, notebook_id: str) -> dict[str, Any] | None:
        rows = self._query(
            "SELECT doc FROM notebooks WHERE id = ? AND application_id = ?",
            [notebook_id, application_id],
        )
        return json.loads(rows[0]["doc"]) if rows else None

    def list_notebooks(self, application_id: str) -> list[tuple[dict[str, Any], int | None]]:
        """Every notebook of the application with when an execution was last requested (ms)."""
        rows = self._query(
            "SELECT doc, last_execution_requested FROM notebooks WHERE application_id = ?",
            [application_id],
        )
        return [(json.loads(r["doc"]), r["last_execution_requested"]) for r in rows]

    def save_notebook(self, doc: dict[str, Any]) -> None:
        with self._lock:
            self._db.execute("UPDATE notebooks SET doc = ? WHERE id = ?", [_dump(doc), doc["id"]])

    def delete_notebook(self, notebook_id: str) -> list[str]:
        """Delete the notebook with its executions and export jobs; returns the execution ids."""
        with self._transaction() as db:
            ids = [
                r["id"]
                for r in db.execute(
                    "SELECT id FROM executions WHERE notebook_id = ?", [notebook_id]
                ).fetchall()
            ]
            db.execute("DELETE FROM executions WHERE notebook_id = ?", [notebook_id])
            db.execute("DELETE FROM exports WHERE notebook_id = ?", [notebook_id])
            db.execute("DELETE FROM notebooks WHERE id = ?", [notebook_id])
        return ids

    # executions

    def insert_execution(
        self, doc: dict[str, Any], queued_at: int, callback_url: str | None
    ) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO executions (id, notebook_id, application_id, status, queued_at,"
                " callback_url, doc) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    doc["id"],
                    doc["notebookId"],
                    doc["applicationId"],
                    doc["status"],
                    queued_at,
                    callback_url,
                    _dump(doc),
                ],
            )
            db.execute(
                "UPDATE notebooks SET last_execution_requested = ? WHERE id = ?",
                [queued_at, doc["notebookId"]],
            )

    def get_execution(self, execution_id: str) -> ExecutionRow | None:
        rows = self._query("SELECT * FROM executions WHERE id = ?", [execution_id])
        return _execution(rows[0]) if rows else None

    def logs(
        self, notebook_id: str, limit: int, since_ms: int | None, since_meaning: str
    ) -> list[dict[str, Any]]:
        """Executions of a notebook, newest first by `runQueuedAt`; with `since_ms`, only those
        its `since_meaning` (a key of SINCE_FILTERS) selects."""
        since_filter = SINCE_FILTERS[since_meaning] if since_ms is not None else "1"
        since = since_ms if since_ms is not None else 0
        rows = self._query(
            f"SELECT doc FROM executions WHERE notebook_id = :notebook AND {since_filter}"
            " ORDER BY queued_at DESC, id DESC LIMIT :limit",
            {
                "notebook": notebook_id,
                "since": since,
                "since_date": clock.iso(max(clock.from_ms(since), clock.EPOCH)),
                "limit": limit,
            },
        )
        return [json.loads(r["doc"]) for r in rows]

    def transition(
        self,
        execution_id: str,
        allowed: Iterable[str],
        changes: dict[str, Any],
        *,
        finished_at: int | None = None,
        run_minutes: int = 0,
    ) -> ExecutionRow | None:
        """Apply `changes` to the record if its status is one of `allowed`, atomically.

        A terminal transition (`finished_at` given) also marks its callback as pending. Returns
        the updated row, or None when the status had moved on (or the execution is gone)."""
        with self._transaction() as db:
            row = db.execute("SELECT * FROM executions WHERE id = ?", [execution_id]).fetchone()
            if row is None or row["status"] not in set(allowed):
                return None
            current = _execution(row)
            doc = {**current.doc, **changes}
            pending = finished_at is not None and current.callback_url is not None
            db.execute(
                "UPDATE executions SET status = ?, doc = ?, finished_at = ?, run_minutes = ?,"
                " callback_pending = ? WHERE id = ?",
                [
                    doc["status"],
                    _dump(doc),
                    finished_at,
                    run_minutes,
                    int(pending),
                    execution_id,
                ],
            )
        return ExecutionRow(
            current.id,
            current.notebook_id,
            current.application_id,
            doc["status"],
            current.callback_url,
            doc,
        )

    def executions_with_status(self, statuses: Iterable[str]) -> list[ExecutionRow]:
        """Executions in any of `statuses`, oldest first."""
        wanted = list(statuses)
        rows = self._query(
            f"SELECT * FROM executions WHERE status IN ({','.join('?' * len(wanted))})"
            " ORDER BY queued_at, id",
            wanted,
        )
        return [_execution(r) for r in rows]

    def pending_callbacks(self) -> list[ExecutionRow]:
        rows = self._query("SELECT * FROM executions WHERE callback_pending = 1 ORDER BY queued_at")
        return [_execution(r) for r in rows]

    def callback_done(self, execution_id: str) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE executions SET callback_pending = 0 WHERE id = ?", [execution_id]
            )

    def usage_by_day(
        self, notebook_id: str, start_ms: int, end_ms: int
    ) -> list[tuple[int, str, int, int]]:
        """(day start in ms, status, runs, minutes) of runs that ended within [start, end]."""
        day = 86_400_000
        rows = self._query(
            "SELECT (finished_at / ?) * ? AS day, status, COUNT(*) AS runs,"
            " SUM(run_minutes) AS minutes FROM executions"
            " WHERE notebook_id = ? AND finished_at BETWEEN ? AND ?"
            " GROUP BY day, status ORDER BY day",
            [day, day, notebook_id, start_ms, end_ms],
        )
        return [(r["day"], r["status"], r["runs"], r["minutes"]) for r in rows]

    def usage_since(self, notebook_ids: list[str], since_ms: int) -> dict[str, dict[str, int]]:
        """Per notebook: runs, errors (errored or timeout) and minutes of runs ended since then."""
        if not notebook_ids:
            return {}
        rows = self._query(
            "SELECT notebook_id, COUNT(*) AS runs,"
            " SUM(status IN ('errored', 'timeout')) AS errors, SUM(run_minutes) AS minutes"
            f" FROM executions WHERE finished_at >= ? AND notebook_id IN"
            f" ({','.join('?' * len(notebook_ids))}) GROUP BY notebook_id",
            [since_ms, *notebook_ids],
        )
        return {
            r["notebook_id"]: {"runs": r["runs"], "errors": r["errors"], "minutes": r["minutes"]}
            for r in rows
        }

    # application files

    def record_application_file(self, application_id: str, path: str, private: bool) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO application_files (application_id, path, private) VALUES (?, ?, ?)"
                " ON CONFLICT (application_id, path) DO UPDATE SET private = excluded.private",
                [application_id, path, int(private)],
            )

    def application_file_private(self, application_id: str, path: str) -> bool | None:
        """Whether an output made the file private; None for a file no output wrote."""
        rows = self._query(
            "SELECT private FROM application_files WHERE application_id = ? AND path = ?",
            [application_id, path],
        )
        return bool(rows[0]["private"]) if rows else None

    # data tables

    def save_data_table(self, table: DataTable) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO data_tables (id, application_id, name, columns) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET name = excluded.name, columns = excluded.columns",
                [table.id, table.application_id, table.name, json.dumps(table.columns)],
            )

    def get_data_table(self, application_id: str, table_id: str) -> DataTable | None:
        rows = self._query(
            "SELECT * FROM data_tables WHERE id = ? AND application_id = ?",
            [table_id, application_id],
        )
        return _data_table(rows[0]) if rows else None

    def import_rows(
        self, table: DataTable, new_columns: list[str], rows: list[dict[str, Any]], truncate: bool
    ) -> None:
        """Add `new_columns` to the table and append `rows` (after removing every row first when
        `truncate`), in one transaction."""
        with self._transaction() as db:
            if new_columns:
                db.execute(
                    "UPDATE data_tables SET columns = ? WHERE id = ?",
                    [json.dumps([*table.columns, *new_columns]), table.id],
                )
            if truncate:
                db.execute("DELETE FROM data_table_rows WHERE table_id = ?", [table.id])
            db.executemany(
                "INSERT INTO data_table_rows (table_id, doc) VALUES (?, ?)",
                [(table.id, _dump(row)) for row in rows],
            )

    def data_table_rows(
        self, table_id: str, offset: int, limit: int
    ) -> tuple[list[dict[str, Any]], int]:
        """A page of the table's rows in the order they were added, and how many it has."""
        rows = self._query(
            "SELECT doc FROM data_table_rows WHERE table_id = ? ORDER BY seq LIMIT ? OFFSET ?",
            [table_id, limit, offset],
        )
        total = self._query(
            "SELECT COUNT(*) AS n FROM data_table_rows WHERE table_id = ?", [table_id]
        )[0]["n"]
        return [json.loads(r["doc"]) for r in rows], total

    # input data exports

    def insert_export(self, export: ExportRow) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO exports (id, notebook_id, application_id, status, doc)"
                " VALUES (?, ?, ?, ?, ?)",
                [
                    export.id,
                    export.notebook_id,
                    export.application_id,
                    export.status,
                    _dump(export.doc),
                ],
            )

    def update_export(self, job_id: str, status: str, doc: dict[str, Any]) -> bool:
        """False when the job is gone (its notebook was deleted)."""
        with self._lock:
            cursor = self._db.execute(
                "UPDATE exports SET status = ?, doc = ? WHERE id = ?", [status, _dump(doc), job_id]
            )
            return cursor.rowcount == 1

    def get_export(self, job_id: str) -> ExportRow | None:
        rows = self._query("SELECT * FROM exports WHERE id = ?", [job_id])
        return _export(rows[0]) if rows else None

    def exports_of(self, application_id: str) -> list[ExportRow]:
        """Every export job of the application (its job logs)."""
        rows = self._query("SELECT * FROM exports WHERE application_id = ?", [application_id])
        return [_export(r) for r in rows]

    def exports_with_status(self, statuses: Iterable[str]) -> list[ExportRow]:
        wanted = list(statuses)
        rows = self._query(
            f"SELECT * FROM exports WHERE status IN ({','.join('?' * len(wanted))})", wanted
        )
        return [_export(r) for r in rows]


def _dump(doc: dict[str, Any]) -> str:
    return json.dumps(doc, separators=(",", ":"))


def _application(row: sqlite3.Row) -> Application:
    return Application(row["id"], row["name"], row["max_run_minutes"], row["parallel_runs"])


def _execution(row: sqlite3.Row) -> ExecutionRow:
    return ExecutionRow(
        row["id"],
        row["notebook_id"],
        row["application_id"],
        row["status"],
        row["callback_url"],
        json.loads(row["doc"]),
    )


def _data_table(row: sqlite3.Row) -> DataTable:
    return DataTable(row["id"], row["application_id"], row["name"], json.loads(row["columns"]))


def _export(row: sqlite3.Row) -> ExportRow:
    return ExportRow(
        row["id"], row["notebook_id"], row["application_id"], row["status"], json.loads(row["doc"])
    )
