"""What happens when an execution reaches a terminal status.

A sync claims each terminal transition atomically in Redis (once per execution) and then calls
`on_terminal` for it. The call is made from the sync that holds the notebook, after the record
is stored; the claim stays in the notebook's outbox until the call returns, so a worker that
dies in between makes the next sync call it again. Whatever `on_terminal` sets off must
therefore be idempotent (follow-ups claim their own actions under deterministic keys).
"""

from __future__ import annotations

import logging

from service import metrics
from service.context import Context, current
from service.store import ExecutionRecord

log = logging.getLogger(__name__)


def on_terminal(record: ExecutionRecord, ctx: Context | None = None) -> None:
    """React to `record` having reached a terminal status: record, log and count it."""
    ctx = ctx or current()
    ctx.store.record_transition(record)
    pipeline = record.pipeline
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
            "pipeline": pipeline.as_json() if pipeline else None,
        },
    )
    metrics.TRANSITIONS.labels(record.status or "unknown").inc()
    ctx.followups.on_terminal(record.losant or {}, record.notebook_id, record.meta)
