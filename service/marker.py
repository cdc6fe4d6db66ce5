"""nbrelay's mark on the executions it starts: the `nbrelay` key of their templateContext.

Losant keeps an execution's templateContext and returns it from `/logs`, so the mark is how
nbrelay recognises its own runs later: which pipeline run, step and attempt an execution belongs
to, or which follow-up action started it. An attempt that finds no record of its own outcome
(its worker died) searches Losant for an execution carrying its mark before it acts again.

Run ids and action keys can be seen or worked out by anyone who may run notebooks, so the mark
also carries the action's `nonce`: 16 random bytes (urlsafe base64), made when the action is
opened and kept with it, the same on every attempt. Nobody can copy it before nbrelay's own
execution carries it, so an execution found by its mark is taken as the action's only when it
carries that nonce (`Marker.same_nonce`). An action opened by an earlier version has none; any
execution carrying its mark will do for it, as then.

The mark is written by `with_marker` and read by `read_marker`, nowhere else; the user's part of
a context is `user_context`.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from service import json_input

MARKER_KEY = "nbrelay"
NONCE_BYTES = 16


def new_nonce() -> str:
    """A fresh action nonce: NONCE_BYTES random bytes, urlsafe base64 without padding."""
    return secrets.token_urlsafe(NONCE_BYTES)


@dataclass(frozen=True)
class Marker:
    """What an execution started by nbrelay carries. A pipeline step's execution has `run`,
    `step` and `attempt`; a rule's has `action` (its action key), a retry also `rule`,
    `retry_of` (the execution retried) and `attempt`. Either also has the `nonce` of the action
    that started it (none when an earlier version opened that action)."""

    run: str | None = None
    step: str | None = None
    attempt: int | None = None
    action: str | None = None
    rule: str | None = None
    retry_of: str | None = None
    nonce: str | None = None

    @property
    def is_step(self) -> bool:
        """Whether this is the execution of a pipeline step."""
        return bool(self.run and self.step)

    @property
    def attempt_number(self) -> int:
        return self.attempt if self.attempt is not None else 1

    def step_json(self) -> dict[str, Any]:
        """The pipeline step part, as the API shows it: run, step and attempt."""
        return {"run": self.run, "step": self.step, "attempt": self.attempt_number}

    def same_nonce(self, found: Marker) -> bool:
        """Whether `found` carries this marker's nonce, compared in constant time. A marker
        without a nonce (its action was opened by an earlier version) accepts any."""
        if self.nonce is None:
            return True
        if found.nonce is None:
            return False
        return hmac.compare_digest(found.nonce.encode(), self.nonce.encode())

    def matches(self, found: Marker) -> bool:
        """Whether `found` is this very marker: the same fields and the same nonce."""
        return self.same_nonce(found) and replace(found, nonce=None) == replace(self, nonce=None)

    def to_json(self) -> dict[str, Any]:
        """The fields that are set, as stored in the templateContext."""
        return {name: value for name, value in asdict(self).items() if value is not None}

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> Marker:
        """A marker from its JSON form; fields of the wrong type are left out."""

        def text(name: str) -> str | None:
            item = value.get(name)
            return item if isinstance(item, str) and item else None

        attempt = value.get("attempt")
        return cls(
            run=text("run"),
            step=text("step"),
            attempt=attempt if isinstance(attempt, int) and not isinstance(attempt, bool) else None,
            action=text("action"),
            rule=text("rule"),
            retry_of=text("retry_of"),
            nonce=text("nonce"),
        )


def parse_context(template_context: str | Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A templateContext (Losant keeps it as a JSON string) as a JSON object, or None when it is
    absent or not an object."""
    if isinstance(template_context, Mapping):
        return dict(template_context)
    if not template_context:
        return None
    try:
        value = json_input.loads(template_context)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def with_marker(context: Mapping[str, Any] | None, marker: Marker | None) -> dict[str, Any]:
    """The templateContext to start an execution with: the user's context and the marker."""
    combined = dict(context or {})
    if marker is not None:
        combined[MARKER_KEY] = marker.to_json()
    return combined


def read_marker(template_context: str | Mapping[str, Any] | None) -> Marker | None:
    """The marker an execution's templateContext carries, None when it carries none."""
    entry = (parse_context(template_context) or {}).get(MARKER_KEY)
    return Marker.from_json(entry) if isinstance(entry, dict) else None


def user_context(template_context: str | Mapping[str, Any] | None) -> Any:
    """The user's part of a templateContext: the object without the marker (any other JSON value
    as it is; `{}` when there is none)."""
    if isinstance(template_context, str):
        try:
            template_context = json_input.loads(template_context)
        except ValueError:
            return template_context
    if isinstance(template_context, Mapping):
        return {k: v for k, v in template_context.items() if k != MARKER_KEY}
    return template_context if template_context is not None else {}
