"""PagerDuty, through the Events API v2: a firing alert triggers an incident, its resolution
resolves it. The alert id is the `dedup_key`, so reminders join the open incident instead of
opening new ones. The routing key (the integration key) is the secret."""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from service import defaults
from service.followups.channels import http
from service.followups.channels.base import Channel
from service.followups.channels.secrets import Secret
from service.followups.messages import (
    AlertMessage,
    Event,
    clip,
    error_lines,
    facts,
    headline,
    incident_key,
    log_links,
    urgency,
)

EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"  # EU: https://events.eu.pagerduty.com/...
ROUTING_KEY = re.compile(r"^[A-Za-z0-9]{32}$")
SUMMARY_LENGTH = 1024  # the Events API's limits
DEDUP_KEY_LENGTH = 255


class PagerDutyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["pagerduty"]
    routing_key: Secret
    url: str = EVENTS_URL
    source: str = Field(default="nbrelay", min_length=1)
    timeout: float = defaults.CHANNEL_TIMEOUT

    @field_validator("routing_key")
    @classmethod
    def _integration_key(cls, value):
        if not ROUTING_KEY.match(value.get_secret_value()):
            raise ValueError(
                "must be the 32-character integration key of an Events API v2 integration"
            )
        return value

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        http.require_http_url(value)
        return value


class PagerDutyChannel(Channel):
    kind = "pagerduty"

    def __init__(self, name: str, config: PagerDutyConfig) -> None:
        super().__init__(name)
        self.config = config

    def notify(self, message: AlertMessage) -> None:
        body = json.dumps(self.event(message)).encode()
        headers = {"Content-Type": "application/json"}
        http.post("pagerduty", self.config.url, body, headers, self.config.timeout)

    def event(self, message: AlertMessage) -> dict[str, Any]:
        """The Events API v2 event: `resolve` for a resolution, else `trigger` (a completed run
        or a test triggers an `info` incident of its own)."""
        event: dict[str, Any] = {
            "routing_key": self.config.routing_key.get_secret_value(),
            "dedup_key": incident_key(message)[:DEDUP_KEY_LENGTH],
        }
        if message.event is Event.RESOLVED:
            return {**event, "event_action": "resolve"}
        links = log_links(message)
        details: dict[str, Any] = {
            **facts(message),
            "Errors": error_lines(message),
            "Logs": dict(links),
        }
        return {
            **event,
            "event_action": "trigger",
            "client": "nbrelay",
            "payload": {
                "summary": clip(headline(message), SUMMARY_LENGTH),
                "source": self.config.source,
                "severity": urgency(message),
                "timestamp": (message.finished_at or message.created_at).isoformat(),
                "component": message.notebook_name or message.notebook_id or "nbrelay",
                "group": message.application_id or "nbrelay",
                "class": (message.failure_class or message.event).value,
                "custom_details": details,
            },
            "links": [{"href": url, "text": label} for label, url in links],
        }

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "host": http.host_of(self.config.url)}
