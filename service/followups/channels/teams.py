"""Microsoft Teams: an Adaptive Card posted to a channel's incoming webhook or to a Workflows
("Post to a channel when a webhook request is received") URL. The URL carries its own signature,
so it is a secret."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator

from service import defaults
from service.followups.channels import http
from service.followups.channels.base import Channel
from service.followups.channels.secrets import Secret
from service.followups.messages import (
    AlertMessage,
    Event,
    error_lines,
    facts,
    headline,
    log_links,
    urgency,
)

CARD_VERSION = "1.4"  # what Teams renders, on desktop and mobile
COLOURS = {"critical": "Attention", "error": "Attention", "warning": "Warning", "info": "Default"}


class TeamsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["teams"]
    url: Secret
    timeout: float = defaults.CHANNEL_TIMEOUT

    @field_validator("url")
    @classmethod
    def _http_url(cls, value):
        http.require_http_url(
            value.get_secret_value(), "an http(s) URL (a Teams incoming webhook or Workflows URL)"
        )
        return value


def title(message: AlertMessage) -> str:
    """The card's first line: what kind of message it is, how urgent, and what happened."""
    if message.event is Event.FIRING:
        return f"FIRING · {message.severity.upper()}: {headline(message)}"
    if message.event is Event.RESOLVED:
        return f"RESOLVED: {headline(message).removeprefix('Resolved: ')}"
    return headline(message)


def card(message: AlertMessage) -> dict[str, Any]:
    """The Teams message: one Adaptive Card with the title, the facts, the errors and a button
    per log."""
    colour = "Good" if message.event in (Event.RESOLVED, Event.COMPLETED) else None
    body: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "text": title(message),
            "size": "Large",
            "weight": "Bolder",
            "color": colour or COLOURS[urgency(message)],
            "wrap": True,
        },
        {
            "type": "FactSet",
            "facts": [{"title": label, "value": text} for label, text in facts(message).items()],
        },
    ]
    body += [
        {"type": "TextBlock", "text": line, "fontType": "Monospace", "wrap": True}
        for line in error_lines(message)
    ]
    content: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": CARD_VERSION,
        "body": body,
        "msteams": {"width": "Full"},
    }
    links = log_links(message)
    if links:
        content["actions"] = [
            {"type": "Action.OpenUrl", "title": label, "url": url} for label, url in links
        ]
    return {
        "type": "message",
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "content": content}
        ],
    }


class TeamsChannel(Channel):
    kind = "teams"

    def __init__(self, name: str, config: TeamsConfig) -> None:
        super().__init__(name)
        self.config = config

    def notify(self, message: AlertMessage) -> None:
        http.post(
            "teams",
            self.config.url.get_secret_value(),
            json.dumps(card(message)).encode(),
            {"Content-Type": "application/json"},
            self.config.timeout,
        )

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "host": http.host_of(self.config.url.get_secret_value())}
