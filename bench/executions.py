"""Executions for the scenario benchmarks (P2-P5): started through nbrelay's HTTP API, scripted at
the sandbox to end when the benchmark wants them to, and followed in nbrelay's store.

Starting through `POST /api/notebooks/<id>/executions` (what `nbrelay run` does) gives every
run nbrelay's signed callbackUrl and a record of the request, and makes nbrelay's own calls to
Losant around a start (the lookup of the notebook, the `execute`) part of what is counted.

So that the rate at which nbrelay starts runs does not shape when they end, `start_held` keeps
the runs queued at the sandbox until every one is started and then lets them begin together; a
scripted run takes its notebook's `durationSeconds` as it was when the run was requested, so
each run's duration is set just before its start, and with it when, after the release, it ends.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import requests

from bench.stack import Stack
from service import keys
from service.events.records import TERMINAL_STATUSES, ExecutionRecord
from service.events.store import ExecutionStore
from service.runtime.processes import wait_until

GATE_SECONDS = 86400  # how long the run holding the sandbox's only place takes
GATE_WAIT = 10.0  # seconds for the gate run to begin
REQUEST_TIMEOUT = 30.0  # seconds for one API request
POLL_INTERVAL = 0.1  # seconds between two looks at the store


class Api:
    """nbrelay's HTTP API as the stack's API token sees it, one keep-alive session per thread."""

    def __init__(self, stack: Stack) -> None:
        self.url = stack.url
        self.headers = {"Authorization": f"Bearer {stack.env['NBRELAY_API_TOKEN']}"}
        self._local = threading.local()

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST `body`; a 429 (a start deferred, a rate limit) is tried again after its
        Retry-After, any other error raises."""
        while True:
            response = self._session().post(
                self.url + path, json=body, headers=self.headers, timeout=REQUEST_TIMEOUT
            )
            if response.status_code != 429:
                response.raise_for_status()
                answer: dict[str, Any] = response.json()
                return answer
            time.sleep(float(response.headers.get("Retry-After") or 1))

    def get(self, path: str) -> dict[str, Any]:
        """GET `path`; an error raises."""
        response = self._session().get(
            self.url + path, headers=self.headers, timeout=REQUEST_TIMEOUT
        )
        response.raise_for_status()
        answer: dict[str, Any] = response.json()
        return answer

    def start(self, notebook_id: str) -> str:
        """Start a run of the notebook, as `nbrelay run` does; its execution id."""
        body = {"requestedBy": "bench"}
        return str(self.post(f"/api/notebooks/{notebook_id}/executions", body)["executionId"])

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session


def start_held(
    stack: Stack,
    notebooks: Sequence[str],
    count: int,
    spread: float = 0.0,
    **behaviour: Any,
) -> list[str]:
    """Start `count` runs spread round-robin over `notebooks` (one thread per notebook) while
    the sandbox holds them queued (`holding`), then let them all begin at once; their execution
    ids. Run k is scripted (`behaviour`, default status completed) to take
    `spread * k / (count - 1)` seconds, so the runs end within `spread` seconds of each other."""
    api = Api(stack)
    script = {"status": "completed", **behaviour}

    def start_on(position: int) -> list[str]:
        notebook_id = notebooks[position]
        started = []
        for k in range(position, count, len(notebooks)):
            stack.sandbox.set_behaviour(
                stack.application_id,
                notebook_id,
                **script,
                durationSeconds=spread * k / max(1, count - 1),
            )
            started.append(api.start(notebook_id))
        return started

    with holding(stack), ThreadPoolExecutor(len(notebooks)) as pool:
        per_notebook = list(pool.map(start_on, range(len(notebooks))))
    return [execution_id for ids in per_notebook for execution_id in ids]


@contextmanager
def holding(stack: Stack) -> Iterator[None]:
    """Within the block, runs requested from the sandbox stay queued: the application may run
    one at a time, and a run of a notebook of its own (the gate) takes that place, for ever.
    When the block ends, the application's `parallelRuns` is set back, and the queued runs
    begin together (within the sandbox's 1 s idle wait)."""
    gate = stack.notebook("gate", status="completed", durationSeconds=GATE_SECONDS)
    stack.sandbox.update_application(stack.application_id, parallelRuns=1)
    stack.losant.execute(stack.application_id, gate)
    wait_until(
        lambda: stack.losant.logs(stack.application_id, gate, limit=1)[0].status == "inProgress",
        GATE_WAIT,
        "the gate run to begin",
    )
    try:
        yield
    finally:
        stack.sandbox.update_application(stack.application_id, parallelRuns=stack.parallel_runs)


def start_many(stack: Stack, notebooks: Sequence[str], count: int, threads: int = 16) -> list[str]:
    """Start `count` runs spread round-robin over `notebooks`, `threads` at a time, as fast as
    nbrelay takes them; their execution ids."""
    api = Api(stack)
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(lambda k: api.start(notebooks[k % len(notebooks)]), range(count)))


def at_rate(rate: float, seconds: float, act: Callable[[int], Any], threads: int = 16) -> float:
    """Call `act(i)` at `rate` per second for `seconds` (open loop: a slow call does not delay
    the next one, up to `threads` at once); the rate achieved (calls done / time taken)."""
    total = int(rate * seconds)
    began = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        futures = []
        for i in range(total):
            delay = began + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            futures.append(pool.submit(act, i))
        for future in futures:
            future.result()
    return total / (time.monotonic() - began)


def wait_stored_terminal(
    stack: Stack, execution_ids: Iterable[str], timeout: float
) -> list[ExecutionRecord]:
    """Wait until nbrelay stored every execution as terminal; their records (in no order).
    TimeoutError saying how many are missing after `timeout` seconds.

    While it waits it only asks the terminal status indexes which of the runs they hold (one
    ZMSCORE per status and look), so that watching costs Redis little next to what it watches;
    the records are read once, at the end."""
    waiting = sorted(set(execution_ids))
    total = len(waiting)
    deadline = time.monotonic() + timeout
    while waiting:
        with stack.redis.pipeline(transaction=False) as pipe:
            for status in TERMINAL_STATUSES:
                pipe.zmscore(keys.executions_by_status(status), waiting)
            found = pipe.execute()
        waiting = [
            execution_id
            for i, execution_id in enumerate(waiting)
            if all(scores[i] is None for scores in found)
        ]
        if not waiting:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"{len(waiting)} of {total} executions not stored terminal after {timeout:g}s"
            )
        time.sleep(POLL_INTERVAL)
    store = ExecutionStore(stack.redis, ttl=0)  # read only: the retention is not used
    return [record for record in store.get_many(sorted(set(execution_ids))) if record.is_terminal]


def seconds(iso: str | None) -> float | None:
    """An ISO 8601 time (Losant's or nbrelay's) as seconds since the epoch."""
    if not iso:
        return None
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def ended_at(record: ExecutionRecord) -> float | None:
    """When the run ended at Losant (`notebookCompletedAt`; it then sends its callback)."""
    return seconds((record.losant or {}).get("notebookCompletedAt"))


def stored_terminal_at(record: ExecutionRecord) -> float | None:
    """When nbrelay stored the run as terminal."""
    return seconds(record.as_json()["nbrelay"]["terminalAt"])


def end_window(records: Iterable[ExecutionRecord]) -> float:
    """Seconds between the first and the last end of `records`."""
    return span(t for t in map(ended_at, records) if t is not None)


def span(moments: Iterable[float]) -> float:
    """Seconds between the first and the last of `moments` (0 without any)."""
    values = list(moments)
    return max(values) - min(values) if values else 0.0


def percentile(values: Sequence[float], share: float) -> float:
    """The `share` (0-1) percentile of `values`, interpolated."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=1000, method="inclusive")[round(share * 1000) - 1]


def losant_calls(stack: Stack, notebooks: Iterable[str]) -> dict[str, int]:
    """The requests the sandbox counted for `notebooks`, summed by Losant action name."""
    total: dict[str, int] = {}
    for notebook_id in notebooks:
        for action, n in stack.sandbox.stats(stack.application_id, notebook_id)["requests"].items():
            total[action] = total.get(action, 0) + n
    return total


def wait_ended(stack: Stack, notebooks: Iterable[str], count: int, timeout: float) -> None:
    """Wait until `count` runs of `notebooks` that drop their callbacks (`dropCallbacks`) have
    ended at the sandbox: it counts each callback it drops."""
    notebooks = list(notebooks)

    def dropped() -> bool:
        return (
            sum(
                stack.sandbox.stats(stack.application_id, nb)["callbacksDropped"]
                for nb in notebooks
            )
            >= count
        )

    wait_until(dropped, timeout, f"{count} runs to end at the sandbox", interval=POLL_INTERVAL)


def callbacks(stack: Stack, notebooks: Iterable[str]) -> dict[str, int]:
    """Callbacks the sandbox sent (answered), failed (gave up: 429 or 5xx) and dropped."""
    total = {"sent": 0, "failed": 0}
    for notebook_id in notebooks:
        stats = stack.sandbox.stats(stack.application_id, notebook_id)
        total["sent"] += stats["callbacksSent"]
        total["failed"] += stats["callbacksFailed"]
    return total
