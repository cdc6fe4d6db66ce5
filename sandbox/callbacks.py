"""Callback delivery: POST a run's callback to its `callbackUrl` from a small thread pool.

Delivery never blocks the run loop and never fails a run: each copy is tried with a short timeout
and exponential backoff (on connection errors, timeouts, 429 and 5xx), then given up and logged.
Losant documents nothing about these callbacks: their body and how often they are tried are the
sandbox's guesses (`sandbox.guesses`), read afresh for every callback, so a test can switch them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import requests

from sandbox import clock
from sandbox.guesses import GuessSwitch
from sandbox.stats import Stats

log = logging.getLogger(__name__)

USER_AGENT = "nbrelay-sandbox"


class CallbackSender:
    def __init__(
        self,
        stats: Stats,
        guesses: GuessSwitch,
        *,
        workers: int,
        timeout: float,
    ) -> None:
        self._stats = stats
        self._guesses = guesses
        self._timeout = timeout
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="callback")
        self._closed = threading.Event()
        self._local = threading.local()

    def send(
        self,
        notebook_id: str,
        url: str,
        body: dict[str, Any] | None,
        copies: int,
        on_done: Callable[[], None] | None = None,
    ) -> None:
        """Queue `copies` deliveries of `body` (None: a POST without a body; 0 copies means the
        callback is dropped on purpose); `on_done` runs once every copy is delivered or given
        up."""
        if copies == 0:
            self._stats.count_callback(notebook_id, "dropped")
            if on_done:
                on_done()
            return
        remaining = [copies]
        lock = threading.Lock()

        def deliver_one() -> None:
            if not self._deliver(notebook_id, url, body):
                return
            with lock:
                remaining[0] -= 1
                finished = remaining[0] == 0
            if finished and on_done:
                on_done()

        for _ in range(copies):
            self._pool.submit(deliver_one)

    def close(self) -> None:
        """Stop: deliveries not yet started are abandoned (their callbacks stay pending, to be
        sent after a restart); one in flight finishes its current attempt."""
        self._closed.set()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            session.headers["User-Agent"] = USER_AGENT
        return session

    def _deliver(self, notebook_id: str, url: str, body: dict[str, Any] | None) -> bool:
        """One copy; False when the sender closed before it was delivered or given up."""
        target = _redacted(url)
        guesses = self._guesses.current()
        attempts, backoff = guesses.callbackAttempts, guesses.callbackBackoffSeconds
        content = {"json": body} if body is not None else {"data": b""}
        for attempt in range(1, attempts + 1):
            if self._closed.is_set():
                return False
            try:
                response = self._session().post(url, timeout=self._timeout, **content)
            except requests.RequestException as exc:
                problem = type(exc).__name__
            else:
                if response.status_code < 500 and response.status_code != 429:
                    self._stats.count_callback(notebook_id, "sent")
                    if response.status_code >= 400:
                        log.warning("callback to %s answered %s", target, response.status_code)
                    return True
                problem = f"HTTP {response.status_code}"
            if attempt < attempts:
                log.info("callback to %s failed (%s), retrying", target, problem)
                if self._closed.wait(backoff * 2 ** (attempt - 1)):
                    return False
            else:
                log.warning("callback to %s failed (%s), giving up", target, problem)
        self._stats.count_callback(notebook_id, "failed")
        return True


def run_callback_body(
    kind: str, notebook: dict[str, Any], execution: dict[str, Any], application_name: str
) -> dict[str, Any] | None:
    """The body of a finished run's callback as the `callbackBody` guess `kind` has it (None:
    no body); `notebook` and `execution` are the records the API returns."""
    if kind == "empty":
        return None
    if kind == "execution":
        return execution
    data = {
        "success": execution["status"] == "completed",
        "notebook": notebook,
        "execution": execution,
    }
    if kind == "triggerData":
        return data
    return {
        "time": clock.iso(clock.now()),
        "applicationId": execution["applicationId"],
        "applicationName": application_name,
        "triggerId": notebook["id"],
        "triggerType": "notebook",
        "data": data,
    }


def _redacted(url: str) -> str:
    """Callback URLs carry tokens in their path or query: log only where they point."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/…"
