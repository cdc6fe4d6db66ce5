"""What happens when an execution reaches a terminal status.

A sync claims each terminal transition atomically in Redis (once per execution) and then hands it
to `Transitions.deliver`. The call is made from the sync that holds the notebook, after the record
is stored; the claim stays in the notebook's outbox until the call returns, so a worker that dies
in between makes the next sync deliver it again. Whatever the listener sets off must therefore be
idempotent (follow-ups claim their own actions under deterministic keys).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from service import metrics
from service.events.records import ExecutionRecord
from service.events.store import ExecutionStore

log = logging.getLogger(__name__)

TerminalListener = Callable[[ExecutionRecord], None]


class Transitions:
    def __init__(self, store: ExecutionStore, listener: TerminalListener) -> None:
        """`listener` reacts to each terminal execution (the follow-ups' `on_terminal`)."""
        self.store = store
        self.listener = listener

    def deliver(self, application_id: str, notebook_id: str) -> int:
        """Hand every claimed, not yet handled transition of the notebook on; how many. The
        records are read in one round trip, and the handled ones recorded and taken out of the
        outbox in one, also when a listener fails half-way (the rest stay for the next sync)."""
        waiting = self.store.outbox(application_id, notebook_id)
        if not waiting:
            return 0
        records = {record.id: record for record in self.store.get_many(waiting)}
        gone = [execution_id for execution_id in waiting if execution_id not in records]
        if gone:
            self.store.drop_transitions(application_id, notebook_id, gone)
        handled: list[ExecutionRecord] = []
        try:
            for record in records.values():
                self.on_terminal(record)
                handled.append(record)
        finally:
            self.store.finish_transitions(application_id, notebook_id, handled)
        return len(handled)

    def on_terminal(self, record: ExecutionRecord) -> None:
        """React to `record` having reached a terminal status: log, count, hand on."""
        step = record.pipeline_step
        log.info(
            "execution %s of notebook %s ended %s",
            record.id,
            record.notebook_id,
            record.status,
            extra={
                "event": "terminal",
                "execution": record.id,
                "notebook": record.notebook_id,
                "application": record.application_id,
                "status": record.status,
                "pipeline": step.step_json() if step else None,
            },
        )
        metrics.TRANSITIONS.labels(record.status or "unknown").inc()
        self.listener(record)
