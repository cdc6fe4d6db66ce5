"""What the sandbox does where Losant documents nothing: its guesses, in one model.

Every guess is a field of `Guesses`: its default (`sandbox/defaults.py`), its allowed values (the
field's `schema`) and where the default comes from (`source`: documented, observed in Losant's
clients, or guessed). `nbrelay sandbox` sets each with a flag at start; while the sandbox runs,
`GET /_sandbox/guesses` shows them and `PATCH /_sandbox/guesses` switches any of them for the whole
sandbox. They are kept in memory, so a restart goes back to the flags. A run copies the guesses it
needs (templates, outputInfo, run-time limit) when it starts; a switch applies to runs started
after it.

- `logsSince`: which executions `GET …/logs?since=T` lists. `queued`: those queued at or after T;
  `queuedAfter`: queued strictly after T; `started`: those that started at or after T (runs still
  queued are left out); `ended`: those that reached a terminal status at or after T (runs not
  finished are left out).
- `logsLimitCap`, `logsAboveCap`: the largest `limit` of `GET …/logs`, and whether a larger one
  gets a 400 `Validation` error naming the cap (`reject`) or at most the cap, silently (`silent`).
- `callbackBody`: what a run's callback POSTs. `triggerData`: `{"success", "notebook",
  "execution"}`, the `data` of a Notebook Trigger payload; `triggerPayload`: a whole Notebook
  Trigger payload, that object under `data` with `time`, `applicationId`, `applicationName`,
  `triggerId` and `triggerType` beside it; `execution`: the bare execution record; `empty`: no
  body at all.
- `callbackAttempts` (1: no retries) and `callbackBackoffSeconds` (doubled after every failed
  attempt): how callbacks are retried on connection errors, timeouts, 429 and 5xx.
- `templateSyntax`, `templateContextName`, `templateContextKeys`, `templateMissing`: how input
  and output templates render (`sandbox.templates`).
- `outputInfo`: which files a run's `outputInfo` lists (`sandbox.outputs`).
- `exportIntervalSeconds`: one input data export per notebook in this window (0: no limit).
- `maxRunMinutes`: `maxAllowedRunMinutes` of applications that set none.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from sandbox import defaults, templates
from sandbox.errors import ValidationFailed

LOGS_SINCE = ("queued", "queuedAfter", "started", "ended")
CALLBACK_BODIES = ("triggerData", "triggerPayload", "execution", "empty")
ABOVE_CAP = ("reject", "silent")
LOGS_LIMIT_MAX = 1_000_000


def _guess(default: Any, schema: dict[str, Any], source: str) -> Any:
    return field(default=default, metadata={"schema": schema, "source": source})


def _choice(values: tuple[str, ...]) -> dict[str, Any]:
    return {"type": "string", "enum": list(values)}


# The field names are the JSON names.
@dataclass(frozen=True)
class Guesses:
    logsSince: str = _guess(  # noqa: N815
        defaults.LOGS_SINCE,
        _choice(LOGS_SINCE),
        "guessed: the clients only say since is ms since epoch",
    )
    logsLimitCap: int = _guess(  # noqa: N815
        defaults.LOGS_LIMIT_CAP,
        {"type": "integer", "minimum": 1, "maximum": LOGS_LIMIT_MAX},
        "guessed: Losant documents limit (default 1) but no largest value",
    )
    logsAboveCap: str = _guess(  # noqa: N815
        defaults.LOGS_ABOVE_CAP,
        _choice(ABOVE_CAP),
        "guessed: Losant documents no cap, so nothing about a limit above it",
    )
    callbackBody: str = _guess(  # noqa: N815
        defaults.CALLBACK_BODY,
        _choice(CALLBACK_BODIES),
        "guessed: the Notebook Trigger payload is documented for workflows, callbackUrl's body not",
    )
    callbackAttempts: int = _guess(  # noqa: N815
        defaults.CALLBACK_ATTEMPTS,
        {"type": "integer", "minimum": 1, "maximum": defaults.CALLBACK_MAX_ATTEMPTS},
        "guessed: Losant documents no callback retries",
    )
    callbackBackoffSeconds: float = _guess(  # noqa: N815
        defaults.CALLBACK_BACKOFF,
        {"type": "number", "minimum": 0, "maximum": defaults.CALLBACK_MAX_BACKOFF},
        "guessed: Losant documents no callback retries",
    )
    templateSyntax: str = _guess(  # noqa: N815
        defaults.TEMPLATE_SYNTAX,
        _choice(templates.SYNTAXES),
        "documented: {{ }} lookups; guessed: that nothing beyond value lookups works",
    )
    templateContextName: str = _guess(  # noqa: N815
        defaults.TEMPLATE_CONTEXT_NAME,
        {"type": "string"},  # a name other than notebook and execution (TemplateSettings)
        "guessed: the context can be used in templates (documented), under which name is not",
    )
    templateContextKeys: bool = _guess(  # noqa: N815
        defaults.TEMPLATE_CONTEXT_KEYS,
        {"type": "boolean"},
        "guessed: Losant does not document the context's top-level keys as variables",
    )
    templateMissing: str = _guess(  # noqa: N815
        defaults.TEMPLATE_MISSING,
        _choice(templates.MISSING),
        "guessed: Losant does not document what a path that leads nowhere renders",
    )
    outputInfo: str = _guess(  # noqa: N815
        defaults.OUTPUT_INFO,
        _choice(defaults.OUTPUT_INFO_RULES),
        "guessed: the entry shape is documented, not which outputs appear",
    )
    exportIntervalSeconds: float = _guess(  # noqa: N815
        defaults.EXPORT_INTERVAL,
        {"type": "number", "minimum": 0},
        "documented: one export per 15 minutes; guessed: that the window is per notebook",
    )
    maxRunMinutes: float = _guess(  # noqa: N815
        defaults.MAX_RUN_MINUTES,
        {"type": "number", "exclusiveMinimum": 0},
        "documented: 5 as an example value; the plans' per-run limits are not published",
    )

    def __post_init__(self) -> None:
        self.templates()  # a context name that is no variable name is refused here

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def templates(self) -> templates.TemplateSettings:
        """How input and output templates render under these guesses."""
        return templates.TemplateSettings(
            self.templateSyntax,
            self.templateContextName,
            self.templateContextKeys,
            self.templateMissing,
        )

    def logs_limit(self, limit: int) -> int:
        """The number of executions `/logs` serves for `limit`, or a 400 naming the cap."""
        if limit <= self.logsLimitCap:
            return limit
        if self.logsAboveCap == "reject":
            raise ValidationFailed(f"query.limit: must be at most {self.logsLimitCap}")
        return self.logsLimitCap


SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {guess.name: guess.metadata["schema"] for guess in fields(Guesses)},
    "additionalProperties": False,
}
SOURCES: dict[str, str] = {guess.name: guess.metadata["source"] for guess in fields(Guesses)}


class GuessSwitch:
    """The running sandbox's guesses; read by request threads, the run loop, callback senders,
    the exporter and the API."""

    def __init__(self, initial: Guesses) -> None:
        self._lock = threading.Lock()
        self._current = initial

    def current(self) -> Guesses:
        with self._lock:
            return self._current

    def update(self, changes: dict[str, Any]) -> Guesses:
        """Switch the guesses named in `changes` (checked against SCHEMA by the caller)."""
        with self._lock:
            try:
                self._current = replace(self._current, **changes)
            except ValueError as exc:
                raise ValidationFailed(f"body.templateContextName: {exc}") from None
            return self._current
