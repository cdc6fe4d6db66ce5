"""What nbrelay stores of one execution: Losant's record, untouched, and nbrelay's metadata."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from service.marker import Marker, parse_context, read_marker

TERMINAL_STATUSES = ("completed", "errored", "timeout", "canceled")
RUNNING_STATUSES = ("queued", "inProgress")  # a run waiting to start, or running
STATUSES = (*RUNNING_STATUSES, "canceling", *TERMINAL_STATUSES)


@dataclass(frozen=True)
class ExecutionRecord:
    """One stored execution: Losant's record (None until first read) and nbrelay's metadata."""

    id: str
    application_id: str
    notebook_id: str
    losant: dict[str, Any] | None
    meta: dict[str, str] = field(default_factory=dict)

    @property
    def status(self) -> str | None:
        return (self.losant or {}).get("status")

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def template_context(self) -> dict[str, Any] | None:
        """The context the run was started with, parsed (Losant's copy, else the request's)."""
        if self.losant and self.losant.get("templateContext"):
            return parse_context(self.losant["templateContext"])
        return parse_context(self.meta.get("request_context"))

    @property
    def marker(self) -> Marker | None:
        """nbrelay's mark on the execution, when nbrelay started it."""
        return read_marker(self.template_context)

    @property
    def pipeline_step(self) -> Marker | None:
        """The pipeline run, step and attempt the execution was started for, if any."""
        marker = self.marker
        return marker if marker is not None and marker.is_step else None

    @property
    def queued_ms(self) -> int | None:
        value = self.meta.get("queued_ms")
        return int(value) if value else None

    def as_json(self) -> dict[str, Any]:
        """The API's view: Losant's record untouched under `losant`, ours under `nbrelay`."""
        meta = self.meta
        step = self.pipeline_step
        return {
            "id": self.id,
            "applicationId": self.application_id,
            "notebookId": self.notebook_id,
            "status": self.status,
            "losant": self.losant,
            "nbrelay": {
                "requestedBy": meta.get("requested_by"),
                "requestedAt": meta.get("requested_at"),
                "requestContext": parse_context(meta.get("request_context")),
                "relativeTo": meta.get("relative_to"),
                "callbacksReceived": int(meta.get("callbacks", 0)),
                "lastCallbackAt": meta.get("last_callback_at"),
                "firstSeenAt": meta.get("first_seen_at"),
                "updatedAt": meta.get("updated_at"),
                "terminalAt": meta.get("terminal_at"),
                "overdueAt": meta.get("overdue_at"),
                "pipeline": step.step_json() if step else None,
            },
        }


@dataclass(frozen=True)
class Page:
    items: list[ExecutionRecord]
    next_cursor: str | None


class InvalidCursor(ValueError):
    """A pagination cursor that this store did not hand out."""
