"""Sending the message of one notify action through its channel: the channel as the pipeline file
in force configures it, delivery retried within the job (bounded by attempts and time), and a
failure for good kept where operators see it (`FailedDeliveries`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from service import metrics
from service.followups.actions.dispatcher import ActionFailed
from service.followups.actions.ledger import Lease
from service.followups.alerts.deliveries import FailedDeliveries
from service.followups.channels import build_channel
from service.followups.channels.delivery import DEFAULT_CHANNEL_POLICY, RetryPolicy, deliver
from service.followups.messages import AlertMessage
from service.followups.pipeline_file.model import PipelineFile


@dataclass
class NotificationSender:
    pipeline_file: Callable[[], PipelineFile | None]
    failed_deliveries: FailedDeliveries
    channel_policy: RetryPolicy = DEFAULT_CHANNEL_POLICY

    def send(self, lease: Lease) -> dict[str, Any]:
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
