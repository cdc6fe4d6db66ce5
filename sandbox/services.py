"""The sandbox's parts wired together: storage, run loop, callbacks, exports, behaviours, guesses.

The Flask app reaches them as `current_app.extensions["sandbox"]`; `SandboxServer` starts and
stops them around the HTTP server.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox import clock
from sandbox.behaviours import Behaviours
from sandbox.callbacks import CallbackSender, run_callback_body
from sandbox.downloads import UrlSigner
from sandbox.exports import Exporter
from sandbox.guesses import Guesses, GuessSwitch
from sandbox.layout import DataLayout
from sandbox.records import execution_record, notebook_record
from sandbox.run_loop import RunLimits, RunLoop
from sandbox.scopes import Tokens
from sandbox.stats import Stats
from sandbox.storage import ExecutionRow, Storage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SandboxSettings:
    data_dir: Path
    tokens: dict[str, frozenset[str]]  # each token with its scopes (scopes.py)
    base_url: str  # how callbacks' download links reach the sandbox
    parallel_runs: int
    json_body_limit: int
    upload_limit: int
    callback_workers: int
    callback_timeout: float
    guesses: Guesses  # the guesses the sandbox starts with (templates, outputInfo, limits, ...)
    poll_interval: float
    stop_timeout: float

    def __repr__(self) -> str:
        return f"SandboxSettings(data_dir={self.data_dir!s}, base_url={self.base_url})"


class Services:
    def __init__(self, settings: SandboxSettings) -> None:
        self.settings = settings
        self.tokens = Tokens(settings.tokens)
        self.layout = DataLayout(settings.data_dir).create()
        self.storage = Storage(self.layout.database)
        self.signer = UrlSigner(self.layout.url_key())
        self.behaviours = Behaviours()
        self.stats = Stats()
        self.guesses = GuessSwitch(settings.guesses)
        self.callbacks = CallbackSender(
            self.stats,
            self.guesses,
            workers=settings.callback_workers,
            timeout=settings.callback_timeout,
        )
        self.limits = RunLimits(settings.parallel_runs)
        self.runs = RunLoop(
            self.storage,
            self.layout,
            self.signer,
            self.limits,
            self.announce,
            settings.poll_interval,
            self.guesses,
        )
        self.exporter = Exporter(
            self.storage,
            self.layout,
            self.signer,
            self.callbacks,
            settings.base_url,
            self.guesses,
        )

    def start(self) -> None:
        self.runs.recover()
        self.exporter.resume()
        self.runs.start()

    def stop(self) -> None:
        self.runs.stop(self.settings.stop_timeout)
        self.exporter.close()
        self.callbacks.close()
        self.storage.close()

    def notebook_records(self, docs: list[dict[str, Any]], base_url: str) -> list[dict[str, Any]]:
        """Notebooks as the API returns them, with this month's usage in `stats`."""
        usage = self.storage.usage_since(
            [doc["id"] for doc in docs], clock.to_ms(clock.start_of_month(clock.now()))
        )
        return [
            notebook_record(doc, usage.get(doc["id"]), base_url, self.layout, self.signer)
            for doc in docs
        ]

    def announce(self, row: ExecutionRow) -> None:
        """Send the callback of an execution that reached a terminal status, if it has one."""
        if not row.callback_url:
            return
        notebook = self.storage.get_notebook(row.application_id, row.notebook_id)
        if notebook is None:
            self.storage.callback_done(row.id)
            return
        base_url = self.settings.base_url
        application = self.storage.get_application(row.application_id)
        body = run_callback_body(
            self.guesses.current().callbackBody,
            self.notebook_records([notebook], base_url)[0],
            execution_record(row.doc, base_url),
            application.name if application else "",
        )
        copies = self.behaviours.get(row.notebook_id).callback_copies()
        self.callbacks.send(
            row.notebook_id,
            row.callback_url,
            body,
            copies,
            on_done=lambda: self.storage.callback_done(row.id),
        )
