"""Sending the message of one notify action through its channel: the channel as the pipeline file
in force configures it, delivery retried within the job (bounded by attempts and time), and a
failure for good kept where operators see it (`FailedDeliveries`). An alert's message is not
sent while a silence matches the alert: it is recorded as silenced. What came of an alert's
message goes into the alert's timeline."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from service import metrics
from service.followups.actions.dispatcher import ActionFailed
from service.followups.actions.ledger import Lease
from service.followups.alerts.deliveries import FailedDeliveries
from service.followups.alerts.silences import Silences
from service.followups.alerts.state import Alerts
from service.followups.channels import build_channel
from service.followups.channels.delivery import DEFAULT_CHANNEL_POLICY, RetryPolicy, deliver
from service.followups.messages import AlertMessage
from service.followups.pipeline_file.model import PipelineFile


@dataclass
class NotificationSender:
    pipeline_file: Callable[[], PipelineFile | None]
    failed_deliveries: FailedDeliveries
    alerts: Alerts
    silences: Silences
    channel_policy: RetryPolicy = DEFAULT_CHANNEL_POLICY
    clock: Callable[[], float] = field(default=time.time)

    def send(self, lease: Lease) -> dict[str, Any]:
        spec = lease.record.spec
        loaded = self.pipeline_file()
        config = loaded.channels.get(spec["channel"]) if loaded else None
        if config is None:
            raise ActionFailed(f"channel {spec['channel']} is not configured any more")
        channel = build_channel(spec["channel"], config)
        message = AlertMessage.from_dict(spec["message"])
        alert = self.alerts.by_id(spec["alert"]) if spec.get("alert") else None
        silenced = [s.id for s in self.silences.matching(alert, self.clock())] if alert else []
        if silenced:
            metrics.NOTIFICATIONS.labels(channel.kind, message.event.value, "silenced").inc()
            self._note(spec, message, "silenced", silencedBy=silenced)
            return {"silenced": silenced}
        result = deliver(channel, message, self.channel_policy)
        outcome = "delivered" if result.delivered else "failed"
        metrics.NOTIFICATIONS.labels(channel.kind, message.event.value, outcome).inc()
        self._note(spec, message, outcome, attempts=result.attempts, error=result.error)
        if not result.delivered:
            self.failed_deliveries.record(
                key=lease.key,
                channel=spec["channel"],
                kind=channel.kind,
                event=message.event.value,
                alert=spec.get("alert"),
                error=result.error,
                attempts=result.attempts,
            )
            raise ActionFailed(result.error or "delivery failed")
        return {"attempts": result.attempts}

    def _note(self, spec: dict[str, Any], message: AlertMessage, outcome: str, **more: Any) -> None:
        """Put what came of an alert's message into the alert's timeline."""
        if not spec.get("alert") or spec.get("episode") is None:
            return
        event = {
            "event": "message",
            "message": message.event.value,
            "channel": spec["channel"],
            "outcome": outcome,
            **{name: value for name, value in more.items() if value is not None},
        }
        self.alerts.timeline.note(spec["alert"], int(spec["episode"]), event, self.clock())
