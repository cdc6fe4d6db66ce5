"""Opsgenie, through its Alert API: a firing alert creates an Opsgenie alert whose alias is the
alert id (Opsgenie folds repeats into it), its resolution closes that alias. The API key of an
API integration is the secret."""

from __future__ import annotations

import json
import uuid
from typing import Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, field_validator

from service import defaults
from service.followups.channels import http
from service.followups.channels.base import Channel
from service.followups.channels.secrets import Secret
from service.followups.messages import (
    AlertMessage,
    Event,
    Severity,
    clip,
    email_text,
    facts,
    headline,
    incident_key,
    urgency,
)

API_URL = "https://api.opsgenie.com"  # EU accounts: https://api.eu.opsgenie.com
PRIORITIES: dict[Severity, str] = {"critical": "P1", "error": "P2", "warning": "P3", "info": "P5"}
MESSAGE_LENGTH = 130  # the Alert API's limits
ALIAS_LENGTH = 512
DESCRIPTION_LENGTH = 15000


class OpsgenieConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["opsgenie"]
    api_key: Secret
    url: str = API_URL
    timeout: float = defaults.CHANNEL_TIMEOUT

    @field_validator("api_key")
    @classmethod
    def _genie_key(cls, value):
        try:
            uuid.UUID(value.get_secret_value())
        except ValueError:
            raise ValueError(
                "must be the API key of an Opsgenie API integration (a UUID)"
            ) from None
        return value

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        http.require_http_url(value, f"an http(s) URL such as {API_URL}")
        return value


class OpsgenieChannel(Channel):
    kind = "opsgenie"

    def __init__(self, name: str, config: OpsgenieConfig) -> None:
        super().__init__(name)
        self.config = config

    def notify(self, message: AlertMessage) -> None:
        path, body = self.request(message)
        headers = {
            "Content-Type": "application/json",
            "Authorization": f"GenieKey {self.config.api_key.get_secret_value()}",
        }
        url = self.config.url.rstrip("/") + path
        http.post("opsgenie", url, json.dumps(body).encode(), headers, self.config.timeout)

    def request(self, message: AlertMessage) -> tuple[str, dict[str, Any]]:
        """The path and body: close the alias for a resolution, else create an alert (a
        completed run or a test creates a P5 alert of its own)."""
        alias = incident_key(message)[:ALIAS_LENGTH]
        if message.event is Event.RESOLVED:
            path = f"/v2/alerts/{quote(alias, safe='')}/close?identifierType=alias"
            return path, {"source": "nbrelay", "note": headline(message)}
        return "/v2/alerts", {
            "message": clip(headline(message), MESSAGE_LENGTH),
            "alias": alias,
            "description": clip(email_text(message), DESCRIPTION_LENGTH),
            "priority": PRIORITIES[urgency(message)],
            "source": "nbrelay",
            "entity": message.notebook_name or message.notebook_id or "nbrelay",
            "details": facts(message),
        }

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "host": http.host_of(self.config.url)}
