"""A generic webhook, signed per the Standard Webhooks spec so the receiver can check that the
message comes from this nbrelay, is unchanged and is fresh."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator

from service import defaults, standard_webhooks
from service.followups.channels import http
from service.followups.channels.base import Channel
from service.followups.channels.secrets import Secret
from service.followups.messages import AlertMessage, webhook_payload

MIN_KEY_BYTES = 24  # the Standard Webhooks range for a secret's key
MAX_KEY_BYTES = 64


class WebhookConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["webhook"]
    url: str
    secret: Secret
    timeout: float = defaults.CHANNEL_TIMEOUT

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        http.require_http_url(value)
        return value

    @field_validator("secret")
    @classmethod
    def _whsec(cls, value):
        secret = value.get_secret_value()
        if not secret.startswith(standard_webhooks.SECRET_PREFIX):
            raise ValueError(f"must start with {standard_webhooks.SECRET_PREFIX}")
        try:
            key = base64.b64decode(
                secret.removeprefix(standard_webhooks.SECRET_PREFIX), validate=True
            )
        except (binascii.Error, ValueError):
            raise ValueError(
                f"must be {standard_webhooks.SECRET_PREFIX} followed by base64"
            ) from None
        if not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
            raise ValueError(f"must hold {MIN_KEY_BYTES} to {MAX_KEY_BYTES} bytes of key")
        return value


class WebhookChannel(Channel):
    kind = "webhook"

    def __init__(self, name: str, config: WebhookConfig) -> None:
        super().__init__(name)
        self.config = config

    def notify(self, message: AlertMessage) -> None:
        body = json.dumps(webhook_payload(message), separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            **standard_webhooks.headers(self.config.secret.get_secret_value(), message.id, body),
        }
        http.post("webhook", self.config.url, body, headers, self.config.timeout)

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "host": http.host_of(self.config.url)}
