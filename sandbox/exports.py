"""Input data exports (`requestInputDataExport`): a zip of the inputs the next run would get.

A job is queued (202 with its `jobId`), built on a worker thread with the same input
materialisation a run uses, kept in the data folder for download, and announced to the job's
`callbackUrl` with `{"success", "jobId", "applicationId", "notebookId", "status", "downloadUrl"}`
(`error` instead of `downloadUrl` when it failed). `GET /_sandbox/applications/{a}/exports/{jobId}`
shows the job; `GET /applications/{a}/jobLogs[/{id}]` shows it as Losant's application job log,
under a 24-hex id of its own (how Losant relates the queued `jobId` to its job log is unknown).
A notebook gets one export per `interval` seconds (Losant: one per 15 minutes); sooner is 429.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import threading
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sandbox import clock
from sandbox.callbacks import CallbackSender
from sandbox.downloads import UrlSigner
from sandbox.errors import TooManyRequests
from sandbox.guesses import GuessSwitch
from sandbox.ids import new_job_id
from sandbox.layout import DataLayout
from sandbox.records import notebook_fields
from sandbox.storage import ExportRow, Storage
from sandbox.templates import TemplateScope

log = logging.getLogger(__name__)


class Exporter:
    def __init__(
        self,
        storage: Storage,
        layout: DataLayout,
        signer: UrlSigner,
        callbacks: CallbackSender,
        base_url: str,
        guesses: GuessSwitch,
    ) -> None:
        self._storage = storage
        self._guesses = guesses  # exportIntervalSeconds and the templates
        self._requests = threading.Lock()  # one check-then-insert at a time
        self._layout = layout
        self._signer = signer
        self._callbacks = callbacks
        self._base_url = base_url
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="export")

    def request(
        self,
        notebook: dict[str, Any],
        relative_to: datetime,
        template_context: str | None,
        callback_url: str | None,
        email: str | None,
        requested_by: str,
    ) -> str:
        """Queue an export of `notebook`'s inputs; returns the job id. TooManyRequests when the
        notebook's last export was requested less than the interval ago."""
        now = clock.now()
        job = ExportRow(
            new_job_id(),
            notebook["id"],
            notebook["applicationId"],
            "queued",
            {
                "relativeTo": clock.iso(relative_to),
                "templateContext": template_context,
                "callbackUrl": callback_url,
                "email": email,
                "requestedById": requested_by,
                "createdAt": clock.iso(now),
            },
        )
        interval = timedelta(seconds=self._guesses.current().exportIntervalSeconds)
        with self._requests:
            last = max(
                (
                    datetime.fromisoformat(row.doc["createdAt"])
                    for row in self._storage.exports_of(job.application_id)
                    if row.notebook_id == job.notebook_id
                ),
                default=None,
            )
            if last is not None and now - last < interval:
                wait = (last + interval - now).total_seconds()
                raise TooManyRequests(
                    f"Input data exports are limited to one per {interval.total_seconds():g}"
                    f" seconds per notebook; try again in {wait:.0f} seconds"
                )
            self._storage.insert_export(job)
        self._pool.submit(self._build, job.id)
        return job.id

    def resume(self) -> None:
        """Build again the jobs a previous process did not finish."""
        for job in self._storage.exports_with_status(["queued", "inProgress"]):
            self._pool.submit(self._build, job.id)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def record(self, job: ExportRow, base_url: str) -> dict[str, Any]:
        """The job as `GET /_sandbox/.../exports/{jobId}` shows it."""
        record = {
            "jobId": job.id,
            "jobLogId": log_id(job.id),
            "applicationId": job.application_id,
            "notebookId": job.notebook_id,
            "status": job.status,
            **{k: v for k, v in job.doc.items() if v is not None and k != "callbackUrl"},
        }
        if "downloadUrl" in record:
            record["downloadUrl"] = base_url + record["downloadUrl"]
        return record

    def job_log(self, job: ExportRow, base_url: str) -> dict[str, Any]:
        """The job as Losant's application job log (`applicationJobLog`)."""
        doc = job.doc
        record: dict[str, Any] = {
            "id": log_id(job.id),
            "jobId": log_id(job.id),
            "name": "notebookInputDataExport",
            "applicationId": job.application_id,
            "runQueuedAt": doc["createdAt"],
            "status": job.status,
            "requestedByType": "apiToken",
            "ownerType": "application",
            "ownerId": job.application_id,
            "resourceType": "notebook",
            "resourceId": job.notebook_id,
            "input": {
                key: value
                for key, value in (
                    ("callbackUrl", doc.get("callbackUrl")),
                    ("emails", [doc["email"]] if doc.get("email") else None),
                    ("templateContext", doc.get("templateContext")),
                )
                if value is not None
            },
            "output": {},
        }
        if doc.get("requestedById"):
            record["requestedById"] = doc["requestedById"]
        if doc.get("startedAt"):
            record["runStartedAt"] = doc["startedAt"]
        if doc.get("completedAt"):
            record["runCompletedAt"] = doc["completedAt"]
        if doc.get("downloadUrl"):
            record["output"]["downloadUrls"] = [base_url + doc["downloadUrl"]]
        if doc.get("error"):
            name, _, message = doc["error"].partition(": ")
            record["error"] = {"name": name, "message": message}
        return record

    def _build(self, job_id: str) -> None:
        job = self._storage.get_export(job_id)
        if job is None:
            return
        notebook = self._storage.get_notebook(job.application_id, job.notebook_id)
        job = replace(job, doc={**job.doc, "startedAt": clock.iso(clock.now())})
        self._storage.update_export(job.id, "inProgress", job.doc)
        try:
            if notebook is None:
                raise LookupError("The notebook was deleted")
            outcome = {"downloadUrl": self._zip_inputs(job, notebook)}
            status = "completed"
        except Exception as exc:  # noqa: BLE001 - any failure is the job's error
            log.warning("input data export %s failed: %s", job.id, exc)
            outcome, status = {"error": f"{type(exc).__name__}: {exc}"}, "errored"
        doc = {**job.doc, **outcome, "completedAt": clock.iso(clock.now())}
        if not self._storage.update_export(job.id, status, doc):
            shutil.rmtree(self._layout.notebook_exports(job.notebook_id), ignore_errors=True)
            return
        finished = ExportRow(job.id, job.notebook_id, job.application_id, status, doc)
        if job.doc.get("callbackUrl"):
            body = self.record(finished, self._base_url)
            body["success"] = status == "completed"
            self._callbacks.send(job.notebook_id, job.doc["callbackUrl"], body, copies=1)

    def _zip_inputs(self, job: ExportRow, notebook: dict[str, Any]) -> str:
        from sandbox.inputs import materialize_inputs  # the engine's; loaded on first export

        work = self._layout.export_work_dir(job.notebook_id, job.id)
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        try:
            # An export is no execution: its templates see no `execution`.
            scope = TemplateScope(
                job.doc.get("templateContext"),
                notebook_fields(notebook),
                None,
                self._guesses.current().templates(),
            )
            context = scope.context()
            render = scope.renderer(context)
            materialize_inputs(
                notebook.get("inputs", []),
                work,
                datetime.fromisoformat(job.doc["relativeTo"]),
                self._layout.application_files(job.application_id),
                self._layout.application_fixtures(job.application_id),
                context=context,
                render=render,
            )
            target = self._layout.export_zip(job.notebook_id, job.id)
            with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
                for path in sorted(p for p in work.rglob("*") if p.is_file()):
                    archive.write(path, path.relative_to(work).as_posix())
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return self._signer.path_for(self._layout.relative(target))


def log_id(job_id: str) -> str:
    """The 24-hex id of the job's job log, the same on every call."""
    return hashlib.sha256(b"nbrelay-sandbox-job:" + job_id.encode()).hexdigest()[:24]
