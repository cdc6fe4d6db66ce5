"""Follow-ups wired in-process against the sandbox: actions queued in a list and performed by
`drain()`, terminal executions found by reading `/logs` like a sync does. The end-to-end tests
run the same code in real web, worker and scheduler processes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from service.channels.delivery import RetryPolicy
from service.losant import LosantClient
from service.pipelines.actions import Performer
from service.pipelines.followups import Followups
from service.pipelines.registry import PipelineRegistry
from service.processes import wait_until

FAST_CHANNELS = RetryPolicy(max_attempts=3, max_elapsed=5, backoff_base=0.05, backoff_max=0.1)


class Harness:
    def __init__(
        self,
        redis,
        sandbox_app,
        path: Path,
        *,
        action_lease: float = 60.0,
        losant_url: str | None = None,
    ) -> None:
        self.app = sandbox_app
        self.client = LosantClient(losant_url or sandbox_app.sandbox.url, sandbox_app.sandbox.token)
        self.queue: list[tuple[str, str]] = []
        self.seen: set[str] = set()
        self.notebooks: set[str] = set()
        self.names: dict[str, str] = {}
        self.held: list[str] = []  # prefixes of action keys that drain() leaves in the queue
        registry = PipelineRegistry(redis, path, losant=lambda: (self.client, sandbox_app.id))
        self.followups = Followups(
            redis,
            registry,
            self._performer,
            lambda kind, key: self.queue.append((kind, key)),
            notebook_name=self.names.get,
            action_lease=action_lease,
        )

    def _performer(self, followups: Followups) -> Performer:
        return Performer(
            ledger=followups.ledger,
            losant=lambda: self.client,
            application_id=self.app.id,
            start=self.start,
            pipeline_file=lambda: (
                (followups.registry.current() or None) and followups.registry.current().file
            ),
            record_delivery_failure=followups.record_delivery_failure,
            channel_policy=FAST_CHANNELS,
        )

    def start(self, notebook, *, context, relative_to, pipeline, requested_by) -> str:
        found = self.client.find_notebook(self.app.id, notebook)
        context = dict(context or {})
        if pipeline:
            context["nbrelay"] = pipeline
        return self.client.execute(
            self.app.id,
            found.id,
            template_context=context or None,
            relative_to=relative_to,
        )

    def notebook(self, name: str, **behaviour: Any) -> str:
        notebook_id = self.app.create_notebook(name)["id"]
        self.app.set_behaviour(
            notebook_id, **{"status": "completed", "durationSeconds": 0.1, **behaviour}
        )
        self.notebooks.add(notebook_id)
        self.names[notebook_id] = name
        return notebook_id

    def drain(self) -> None:
        while ready := [item for item in self.queue if not item[1].startswith(tuple(self.held))]:
            self.queue.remove(ready[0])
            self.followups.perform(ready[0][1])

    def sync(self) -> None:
        for notebook_id in sorted(self.notebooks):
            for execution in self.client.logs(self.app.id, notebook_id, limit=100):
                if execution.is_terminal and execution.id not in self.seen:
                    self.seen.add(execution.id)
                    record = execution.model_dump(mode="json", by_alias=True, exclude_none=True)
                    self.followups.on_terminal(record, notebook_id)

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
