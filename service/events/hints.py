"""What a callback or relay body says about itself, and how it is kept in the event stream.

The body is never trusted: it is kept (truncated) in the event stream for inspection and only
read for an execution id, which lets nbrelay count callbacks per execution. What to sync comes
from the signed token (callbacks) or the authenticated relay request (hooks); what is stored
comes from Losant.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from service import defaults, json_input
from service.config import OBJECT_ID
from service.times import now_iso


@dataclass(frozen=True)
class Hint:
    """What a body says about itself (unverified)."""

    payload: dict[str, Any] | None = None
    execution_id: str | None = None
    status: str | None = None
    application_id: str | None = None
    notebook_id: str | None = None


def _object_id(value: Any) -> str | None:
    return value if isinstance(value, str) and OBJECT_ID.fullmatch(value) else None


def parse_hint(body: bytes) -> Hint:
    """Read a Notebook Trigger payload (`{data: {success, notebook, execution}}`), the same
    without `data`, or a bare execution record; anything else is a hint with no details."""
    try:
        payload = json_input.loads(body)
    except (ValueError, UnicodeDecodeError):
        return Hint()
    if not isinstance(payload, dict):
        return Hint()
    envelope = payload
    inner = payload["data"] if isinstance(payload.get("data"), dict) else payload
    execution = inner["execution"] if isinstance(inner.get("execution"), dict) else inner
    notebook = inner["notebook"] if isinstance(inner.get("notebook"), dict) else {}
    status = execution.get("status")
    return Hint(
        payload=payload,
        execution_id=_object_id(execution.get("id") or execution.get("notebookExecutionId")),
        status=status if isinstance(status, str) else None,
        application_id=_object_id(execution.get("applicationId"))
        or _object_id(notebook.get("applicationId"))
        or _object_id(envelope.get("applicationId")),
        notebook_id=_object_id(execution.get("notebookId"))
        or _object_id(notebook.get("id") or notebook.get("notebookId")),
    )


@dataclass(frozen=True)
class Incoming:
    """One accepted callback or relay request: its source, the notebook it names (from the
    token or the authenticated relay body), its body and what the body says of itself."""

    source: str
    application_id: str
    notebook_id: str
    body: bytes
    content_type: str | None
    hint: Hint
    run: str | None = None
    step: str | None = None

    def event_fields(self, now: float | None = None) -> dict[str, str]:
        """Its entry in the event stream (Redis stream values are strings), of bounded size:
        at most EVENT_BODY_KEEP bytes of the body and EVENT_TEXT_KEEP bytes of each text the
        sender chose."""
        decoded = self.body[: defaults.EVENT_BODY_KEEP].decode("utf-8", errors="replace")
        kept = _keep(decoded)
        fields = {
            "source": self.source,
            "application": self.application_id,
            "notebook": self.notebook_id,
            "receivedAt": now_iso(now),
            "contentType": _keep(self.content_type or "", defaults.EVENT_TEXT_KEEP),
            "bodyBytes": str(len(self.body)),
            "body": kept,
            "truncated": "0" if len(self.body) == len(decoded) == len(kept) else "1",
            "execution": self.hint.execution_id or "",
            "claimedStatus": _keep(self.hint.status or "", defaults.EVENT_TEXT_KEEP),
        }
        if self.run:
            fields["run"] = self.run
        if self.step:
            fields["step"] = self.step
        return fields


def _keep(text: str, limit: int = defaults.EVENT_BODY_KEEP) -> str:
    """At most `limit` bytes of `text` in UTF-8, cut between characters (a body's replaced
    invalid bytes take three bytes each)."""
    return text.encode()[:limit].decode("utf-8", errors="ignore")
