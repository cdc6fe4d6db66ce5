"""The log channel: the alert as one line of nbrelay's log, for setups without any other channel
and as an audit trail beside them."""

from __future__ import annotations

import logging
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from service.followups.channels.base import Channel
from service.followups.messages import AlertMessage, log_text

logger = logging.getLogger("nbrelay.alerts")
LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


class LogConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["log"]
    level: Literal["info", "warning", "error"] = "warning"


class LogChannel(Channel):
    kind = "log"

    def __init__(self, name: str, config: LogConfig) -> None:
        super().__init__(name)
        self.config = config

    def notify(self, message: AlertMessage) -> None:
        logger.log(
            LEVELS[self.config.level],
            log_text(message),
            extra={"channel": self.name, "alert_event": message.event.value},
        )

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "level": self.config.level}
