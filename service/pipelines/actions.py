"""Performing follow-up actions. Each function does one kind of action for one ledger record
and returns its outcome; `ActionFailed` means it will never work (recorded, not retried), any
`LosantError` but the permanent ones means "try again later".

An attempt after the first one starts by finding out whether an earlier attempt already acted:
for an execution, Losant's `/logs` is searched for an execution carrying the action's step key
(pipeline run, step, attempt) or action key in its templateContext.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from service import defaults, metrics
from service.alerts.messages import AlertMessage
from service.channels import build_channel
from service.channels.delivery import RetryPolicy, deliver
from service.errors import NbrelayError
from service.losant import LosantClient
from service.pipelines.ledger import ActionRecord, Lease, Ledger
from service.pipelines.model import INPUT_FIELDS, PipelineFile

PATCHABLE = ("name", "description", "imageVersion", "inputs")


class ActionFailed(NbrelayError):
    """The action cannot be performed and trying again will not help."""


class Starter(Protocol):
    def __call__(
        self,
        notebook: str,
        *,
        context: dict[str, Any] | None,
        relative_to: Any,
        pipeline: dict[str, Any] | None,
        requested_by: str,
    ) -> str:
        """Start an execution of `notebook` (id or name) and return its id. `context` is the
        whole templateContext; `pipeline` is the run, step and attempt it belongs to, if any."""


@dataclass
class Performer:
    """What performing actions needs."""

    ledger: Ledger
    losant: Callable[[], LosantClient]
    application_id: str
    start: Starter
    pipeline_file: Callable[[], PipelineFile | None]
    record_delivery_failure: Callable[[dict[str, Any]], None]
    channel_policy: RetryPolicy = RetryPolicy()

    def execute(self, lease: Lease) -> dict[str, Any]:
        spec = lease.record.spec
        if lease.attempt > 1:
            found = self.find_started(lease.record)
            if found is not None:
                return {"execution_id": found, "found_in_losant": True}
        context = dict(spec.get("context") or {})
        if spec.get("marker"):
            context["nbrelay"] = spec["marker"]
        execution_id = self.start(
            spec["notebook"],
            context=context or None,
            relative_to=spec.get("relative_to"),
            pipeline=spec.get("pipeline"),
            requested_by=spec.get("requested_by", "nbrelay"),
        )
        return {"execution_id": execution_id}

    def find_started(self, record: ActionRecord) -> str | None:
        """The execution an earlier attempt of this action started, if Losant knows of one."""
        client = self.losant()
        notebook = client.find_notebook(self.application_id, record.spec["notebook"])
        since = int((record.created_at - defaults.ACTION_RECOVERY_LOOKBACK) * 1000)
        executions = client.logs(
            self.application_id,
            notebook.id,
            limit=defaults.ACTION_RECOVERY_LOGS_LIMIT,
            since=since,
        )
        for execution in executions:
            if _carries(execution.template_context, record):
                return execution.id
        return None

    def patch(self, lease: Lease) -> dict[str, Any]:
        spec = lease.record.spec
        client = self.losant()
        notebook = client.find_notebook(self.application_id, spec["notebook"])
        current = notebook.model_dump(mode="json", by_alias=True, exclude_none=True)
        progress = lease.record.progress or {}
        before = progress.get("before")
        if before is None:
            before = {k: current[k] for k in PATCHABLE if k in current}
            self.ledger.checkpoint(lease, {"before": before})
        changes = dict(spec.get("set") or {})  # an undo sets `inputs` back whole, through `set`
        if spec.get("inputs"):
            changes["inputs"] = _patched_inputs(before.get("inputs") or [], spec["inputs"])
        after = client.patch_notebook(self.application_id, notebook.id, changes)
        patched = after.model_dump(mode="json", by_alias=True, exclude_none=True)
        return {
            "notebook_id": notebook.id,
            "before": {k: before.get(k) for k in changes},
            "after": {k: patched.get(k) for k in changes},
        }

    def notify(self, lease: Lease) -> dict[str, Any]:
        spec = lease.record.spec
        loaded = self.pipeline_file()
        config = loaded.channels.get(spec["channel"]) if loaded else None
        if config is None:
            raise ActionFailed(f"channel {spec['channel']} is not configured any more")
        channel = build_channel(spec["channel"], config)
        message = AlertMessage.from_dict(spec["message"])
        result = deliver(channel, message, self.channel_policy)
        outcome = "delivered" if result.delivered else "failed"
        metrics.NOTIFICATIONS.labels(channel.kind, message.event.value, outcome).inc()
        if not result.delivered:
            self.record_delivery_failure(
                {
                    "key": lease.key,
                    "channel": spec["channel"],
                    "kind": channel.kind,
                    "event": message.event.value,
                    "alert": spec.get("alert"),
                    "error": result.error,
                    "attempts": result.attempts,
                    "at": time.time(),
                }
            )
            raise ActionFailed(result.error or "delivery failed")
        return {"attempts": result.attempts}


def message_id(action_key: str) -> str:
    """A message id derived from the action key: the same on every attempt of one delivery."""
    return "msg_" + hashlib.sha256(action_key.encode()).hexdigest()[:24]


def _carries(template_context: str | None, record: ActionRecord) -> bool:
    try:
        marker = json.loads(template_context or "").get("nbrelay")
    except (ValueError, AttributeError):
        return False
    if not isinstance(marker, dict):
        return False
    pipeline = record.spec.get("pipeline")
    if pipeline:
        return all(marker.get(k) == v for k, v in pipeline.items())
    return marker.get("action") == record.key


def _patched_inputs(inputs: list[dict[str, Any]], changes: dict[str, dict[str, Any]]) -> list:
    """The notebook's inputs with the given fields set on the inputs named by file name."""
    by_name = {i.get("fileName"): i for i in inputs}
    missing = sorted(set(changes) - set(by_name))
    if missing:
        raise ActionFailed(f"the notebook has no input named {missing[0]!r}")
    for fields in changes.values():
        unknown = set(fields) - set(INPUT_FIELDS)
        if unknown:
            raise ActionFailed(f"input field {sorted(unknown)[0]!r} cannot be patched")
    return [{**i, **changes.get(i.get("fileName"), {})} for i in inputs]
