"""Follow-ups built in-process against the sandbox with the factory every nbrelay process uses:
actions queued in a list and performed by `drain()`, terminal executions found by reading
`/logs` like a sync does. The end-to-end tests run the same code in real web, worker and
scheduler processes.

Terminal executions reach the follow-ups the way a sync hands them on: stored in the execution
store under a sync's lease, claimed once, then delivered by `Transitions`.

Besides the facade, the harness keeps its own handles on the action ledger and the alert states
(on the same Redis, as another process would have) to play a process that dies half way.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import redis as redis_lib

from service.events.logs_limit import LogsCaps
from service.events.records import ExecutionRecord
from service.events.store import ExecutionStore
from service.events.sync_state import Busy, SyncState
from service.events.transitions import Transitions
from service.followups.actions.ledger import Ledger
from service.followups.actions.performer import spec_marker
from service.followups.alerts.state import Alerts
from service.followups.channels.delivery import RetryPolicy
from service.followups.factory import build_followups
from service.followups.pipeline_file.registry import PipelineRegistry
from service.losant import LosantClient
from service.marker import Marker, with_marker
from service.runtime.processes import wait_until
from tests.support.sandbox import LOG_OUTPUTS

FAST_CHANNELS = RetryPolicy(max_attempts=3, max_elapsed=5, backoff_base=0.05, backoff_max=0.1)
TTL = 30 * 24 * 3600


class Harness:
    def __init__(
        self,
        redis_url: str,
        sandbox_app,
        path: Path,
        *,
        action_lease: float = 60.0,
        losant_url: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app = sandbox_app
        self.client = LosantClient(losant_url or sandbox_app.sandbox.url, sandbox_app.sandbox.token)
        self.redis = redis_lib.Redis.from_url(redis_url, decode_responses=True)
        self.queue: list[tuple[str, str]] = []
        self.starts: list[str] = []  # keys of the actions enqueued as first steps of a new run
        self.seen: set[str] = set()
        self.notebooks: set[str] = set()
        self.names: dict[str, str] = {}
        self.held: list[str] = []  # prefixes of action keys that drain() leaves in the queue
        # called with each execution `start` started, after Losant answered and before the
        # worker records it: what may happen in between
        self.on_started: Callable[[str], None] | None = None
        self.registry = PipelineRegistry(
            self.redis, path, ttl=TTL, losant=lambda: (self.client, sandbox_app.id)
        )
        self.followups = build_followups(
            self.redis,
            self.registry,
            losant=lambda: self.client,
            application_id=sandbox_app.id,
            start=self.start,
            enqueue=self._enqueue,
            ttl=TTL,
            known_name=lambda application_id, notebook_id: self.names.get(notebook_id),
            action_lease=action_lease,
            channel_policy=FAST_CHANNELS,
            clock=clock,
        )
        self.store = ExecutionStore(self.redis, ttl=TTL)
        self.syncs = SyncState(self.redis, lease_seconds=30, ttl=TTL)
        self.transitions = Transitions(self.store, self.followups.on_terminal)
        self.ledger = Ledger(self.redis, ttl=TTL, lease=action_lease, clock=clock)
        self.alerts = Alerts(self.redis, ttl=TTL, clock=clock)

    def start(
        self,
        notebook: str,
        *,
        requested_by: str,
        context: Mapping[str, Any] | None,
        relative_to: Any,
        marker: Marker | None,
    ) -> str:
        """Start an execution like nbrelay does, without a callback URL (nothing would listen)."""
        found = self.client.find_notebook(self.app.id, notebook)
        template_context = with_marker(context, marker)
        execution_id = self.client.execute(
            self.app.id,
            found.id,
            template_context=json.dumps(template_context) if template_context else None,
            relative_to=relative_to,
        )
        if self.on_started is not None:
            self.on_started(execution_id)
        return execution_id

    def start_and_die(self, key: str) -> str:
        """Play a worker that takes the execute action `key`, starts its execution and dies
        before it records that it did."""
        lease = self.ledger.acquire(key)
        assert lease is not None, f"action {key} could not be taken"
        spec = lease.record.spec
        return self.start(
            spec["notebook"],
            requested_by="test",
            context=spec.get("context"),
            relative_to=spec.get("relative_to"),
            marker=spec_marker(spec),
        )

    def notebook(self, name: str, **behaviour: Any) -> str:
        notebook_id = self.app.create_notebook(name, outputs=LOG_OUTPUTS)["id"]
        self.app.set_behaviour(
            notebook_id, **{"status": "completed", "durationSeconds": 0.1, **behaviour}
        )
        self.notebooks.add(notebook_id)
        self.names[notebook_id] = name
        return notebook_id

    def terminal(
        self, execution: dict[str, Any], notebook_id: str, meta: dict[str, str] | None = None
    ) -> None:
        """Hand a terminal execution (Losant's record) to the follow-ups, as a sync does."""
        record = ExecutionRecord(execution["id"], self.app.id, notebook_id, execution, meta or {})
        self.followups.on_terminal(record)

    def drain(self) -> None:
        while ready := [item for item in self.queue if not item[1].startswith(tuple(self.held))]:
            self.queue.remove(ready[0])
            self.followups.perform(ready[0][1])

    def sync(self) -> None:
        """Read every notebook's executions and hand on those newly terminal, like a sync (the
        ones in `seen` are left out)."""
        for notebook_id in sorted(self.notebooks):
            records = [
                e.model_dump(mode="json", by_alias=True, exclude_none=True)
                for e in LogsCaps(self.redis)
                .read(self.client, self.app.id, notebook_id, limit=100)
                .executions
                if e.id not in self.seen
            ]
            self.store_and_deliver(notebook_id, records)

    def store_and_deliver(self, notebook_id: str, records: list[dict[str, Any]]) -> list[str]:
        """Store Losant's records of a notebook's executions and hand on those that became
        terminal, as a sync does; returns their ids."""
        claim = self.syncs.begin(self.app.id, notebook_id, "harness", time.time())
        assert not isinstance(claim, Busy), f"notebook {notebook_id} is held by a sync"
        claimed = self.store.upsert(self.app.id, notebook_id, records, fence=claim.fence)
        self.seen.update(claimed)
        self.transitions.deliver(self.app.id, notebook_id)
        self.syncs.finish_round(claim, None, time.time())
        return claimed

    def _enqueue(self, kind: str, key: str, starts_run: bool) -> None:
        self.queue.append((kind, key))
        if starts_run:
            self.starts.append(key)

    def pump(self) -> None:
        self.followups.tick()
        self.drain()
        self.sync()
        self.drain()

    def run_until(self, condition, what: str, timeout: float = 20.0):
        def step():
            self.pump()
            return condition()

        return wait_until(step, timeout, what, interval=0.05)

    def executions(self, notebook_id: str) -> list[dict]:
        """Executions of a notebook, oldest first, with their templateContext parsed."""
        found = self.app.logs(notebook_id)
        for execution in found:
            execution["context"] = json.loads(execution.get("templateContext") or "{}")
        return list(reversed(found))

    def close(self) -> None:
        self.client.close()
        self.redis.close()
