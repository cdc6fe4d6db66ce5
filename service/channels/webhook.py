"""A generic webhook, signed per the Standard Webhooks spec so the receiver can check that the
message comes from this nbrelay, is unchanged and is fresh."""

from __future__ import annotations

import json
import time
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, field_validator

from service import defaults
from service.alerts.messages import AlertMessage, webhook_payload
from service.channels import http, signing
from service.channels.base import Channel
from service.channels.secrets import Secret


class WebhookConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["webhook"]
    url: str
    secret: Secret
    timeout: float = defaults.CHANNEL_TIMEOUT

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an http(s) URL")
        return value

    @field_validator("secret")
    @classmethod
    def _whsec(cls, value):
        signing.secret_key(value.get_secret_value())
        return value


class WebhookChannel(Channel):
    kind = "webhook"

    def __init__(self, name: str, config: WebhookConfig) -> None:
        super().__init__(name)
        self.config = config

    def notify(self, message: AlertMessage) -> None:
        body = json.dumps(webhook_payload(message), separators=(",", ":")).encode()
        timestamp = int(time.time())
        signature = signing.sign(self.config.secret.get_secret_value(), message.id, timestamp, body)
        headers = {
            "Content-Type": "application/json",
            "webhook-id": message.id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature,
        }
        http.post("webhook", self.config.url, body, headers, self.config.timeout)

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "host": http.host_of(self.config.url)}
