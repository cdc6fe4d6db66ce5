"""Notification channels: one class per kind, each configured by its own model in the pipeline
file's `channels:` section."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from pydantic import Field

from service.followups.channels.base import Channel, ChannelError
from service.followups.channels.email import EmailChannel, EmailConfig
from service.followups.channels.log import LogChannel, LogConfig
from service.followups.channels.opsgenie import OpsgenieChannel, OpsgenieConfig
from service.followups.channels.pagerduty import PagerDutyChannel, PagerDutyConfig
from service.followups.channels.slack import SlackChannel, SlackConfig
from service.followups.channels.teams import TeamsChannel, TeamsConfig
from service.followups.channels.webhook import WebhookChannel, WebhookConfig

AnyChannelConfig = (
    SlackConfig
    | WebhookConfig
    | EmailConfig
    | LogConfig
    | PagerDutyConfig
    | TeamsConfig
    | OpsgenieConfig
)
ChannelConfig = Annotated[AnyChannelConfig, Field(discriminator="kind")]

_CLASSES: dict[type, Callable[[str, Any], Channel]] = {
    SlackConfig: SlackChannel,
    WebhookConfig: WebhookChannel,
    EmailConfig: EmailChannel,
    LogConfig: LogChannel,
    PagerDutyConfig: PagerDutyChannel,
    TeamsConfig: TeamsChannel,
    OpsgenieConfig: OpsgenieChannel,
}


def build_channel(name: str, config: AnyChannelConfig) -> Channel:
    """The channel object for one entry of the pipeline file's `channels:`."""
    return _CLASSES[type(config)](name, config)


__all__ = [
    "Channel",
    "ChannelConfig",
    "ChannelError",
    "build_channel",
]
