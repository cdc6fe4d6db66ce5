"""Slack incoming webhooks. The webhook URL's path is the credential, so it is a secret."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator

from service import defaults
from service.followups.channels import http
from service.followups.channels.base import Channel
from service.followups.channels.secrets import Secret
from service.followups.messages import AlertMessage, slack_text


class SlackConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["slack"]
    url: Secret
    timeout: float = defaults.CHANNEL_TIMEOUT

    @field_validator("url")
    @classmethod
    def _http_url(cls, value):
        http.require_http_url(
            value.get_secret_value(), "an http(s) URL (a Slack incoming webhook URL)"
        )
        return value


class SlackChannel(Channel):
    kind = "slack"

    def __init__(self, name: str, config: SlackConfig) -> None:
        super().__init__(name)
        self.config = config

    def notify(self, message: AlertMessage) -> None:
        body = json.dumps({"text": slack_text(message)}).encode()
        http.post(
            "slack",
            self.config.url.get_secret_value(),
            body,
            {"Content-Type": "application/json"},
            self.config.timeout,
        )

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "host": http.host_of(self.config.url.get_secret_value())}
