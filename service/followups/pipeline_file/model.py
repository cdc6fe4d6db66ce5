"""The pipeline file as typed models: what each section may hold. Cross-references (steps,
channels, notebooks, templates) are checked by `validation`, which also locates problems."""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    model_validator,
)

from service import defaults
from service.config import OBJECT_ID
from service.followups.channels import ChannelConfig
from service.followups.messages import Severity
from service.followups.pipeline_file.durations import Duration

NAME = r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$"
Name = Annotated[str, Field(pattern=NAME)]
NotebookReference = Annotated[str, Field(min_length=1, max_length=1024)]
Template = Annotated[str, Field(max_length=defaults.TEMPLATE_CONTEXT_MAX_LENGTH)]
Status = Literal["completed", "errored", "timeout", "canceled", "missing_callback", "overdue"]


def _listify(value: Any) -> Any:
    """A single item may be written without brackets: `after: extract`."""
    return [value] if isinstance(value, str) else value


NameList = Annotated[list[Name], BeforeValidator(_listify)]
FailurePolicy = Literal["fail", "skip", "continue"]

# Fields of a notebook input that a patch may set (Losant's names, see the notebook schema).
InputField = Literal[
    "start",
    "end",
    "deviceIds",
    "deviceTags",
    "attributes",
    "queryJson",
    "dataTableId",
    "sourceUrl",
    "filePath",
    "private",
    "format",
]
INPUT_FIELDS: tuple[str, ...] = get_args(InputField)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class NotebookEntry(Strict):
    """An alias in `notebooks:` for a notebook known by id or by exact name."""

    id: str | None = Field(default=None, pattern=OBJECT_ID.pattern)
    name: NotebookReference | None = None

    @model_validator(mode="after")
    def _one_of(self) -> NotebookEntry:
        if (self.id is None) == (self.name is None):
            raise ValueError("give either id or name")
        return self

    @property
    def reference(self) -> str:
        return self.id or self.name or ""


class Retry(Strict):
    """Re-run a failed execution with the same context: `max_attempts` counts the first run;
    the wait before attempt n+1 is `backoff[n-1]` (the last entry repeats)."""

    max_attempts: int = Field(ge=2, le=100)
    backoff: list[Duration] = Field(default_factory=lambda: [60.0], min_length=1)

    def delay_before(self, attempt: int) -> float:
        """Seconds to wait before starting attempt number `attempt` (2 or more)."""
        return self.backoff[min(attempt - 2, len(self.backoff) - 1)]


class Step(Strict):
    notebook: NotebookReference
    after: NameList = Field(default_factory=list)
    when: Template | None = None
    context: dict[str, Any] = Field(default_factory=dict)
    relative_to: Template | None = None
    retry: Retry | None = None
    on_failure: FailurePolicy = "fail"


class Pipeline(Strict):
    description: str = ""
    params: dict[Name, Any] = Field(default_factory=dict)
    steps: dict[Name, Step] = Field(min_length=1)

    def upstream(self, key: str) -> set[str]:
        """Every step that `key` (transitively) comes after."""
        seen: set[str] = set()
        stack = list(self.steps[key].after)
        while stack:
            step = stack.pop()
            if step not in seen and step in self.steps:
                seen.add(step)
                stack.extend(self.steps[step].after)
        return seen


class ExecuteAction(Strict):
    notebook: NotebookReference
    context: dict[str, Any] = Field(default_factory=dict)
    relative_to: Template | None = None


class PatchAction(Strict):
    """Fields to set on a notebook: top-level ones under `set`, and fields of individual
    inputs (by file name) under `inputs`."""

    notebook: NotebookReference
    set: dict[Literal["name", "description", "imageVersion"], Any] = Field(default_factory=dict)
    inputs: dict[str, dict[InputField, Any]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _something(self) -> PatchAction:
        if not self.set and not self.inputs:
            raise ValueError("a patch needs `set` or `inputs`")
        return self


class ExecuteItem(Strict):
    execute: ExecuteAction


class PatchItem(Strict):
    patch: PatchAction


class RetryItem(Strict):
    retry: Retry


SEVERITIES: tuple[Severity, ...] = get_args(Severity)  # the highest first


class OverdueSettings(Strict):
    """A run is overdue (stuck) once it is still queued or in progress `maxAllowedRunMinutes`
    plus both slacks after it was queued."""

    queue_slack: Duration = defaults.OVERDUE_QUEUE_SLACK
    output_slack: Duration = defaults.OVERDUE_OUTPUT_SLACK

    @property
    def slack(self) -> float:
        return self.queue_slack + self.output_slack


class AlertSettings(Strict):
    """How an alert is sent: the global `alerts:` block, and a rule's `notify` over it."""

    group_wait: Duration = defaults.ALERT_GROUP_WAIT
    repeat_interval: Duration = defaults.ALERT_REPEAT_INTERVAL
    send_resolved: bool = True
    severity: Severity = "error"
    overdue: OverdueSettings = Field(default_factory=OverdueSettings)  # global block only

    def strictest(self, other: AlertSettings) -> AlertSettings:
        """What the settings of two rules notifying about the same alert come to: the shorter
        waits, the resolved message if either wants it, the higher severity."""
        return AlertSettings.model_construct(
            group_wait=min(self.group_wait, other.group_wait),
            repeat_interval=min(self.repeat_interval, other.repeat_interval),
            send_resolved=self.send_resolved or other.send_resolved,
            severity=min(self.severity, other.severity, key=SEVERITIES.index),
        )


def _notify_object(value: Any) -> Any:
    """`notify: [slack]` (or `notify: slack`) is short for `notify: {channels: [slack]}`."""
    return {"channels": value} if isinstance(value, list | str) else value


class Notify(Strict):
    """Where a rule's alerts go and, for what it leaves out, the global `alerts:` settings."""

    channels: Annotated[NameList, Field(min_length=1)]
    group_wait: Duration | None = None
    repeat_interval: Duration | None = None
    send_resolved: bool | None = None
    severity: Severity | None = None

    def settings(self, defaults: AlertSettings) -> AlertSettings:
        """The rule's settings over `defaults` (the global `alerts:` block)."""
        given = self.model_dump(exclude={"channels"}, exclude_none=True)
        return defaults.model_copy(update=given)


class NotifyItem(Strict):
    notify: Annotated[Notify, BeforeValidator(_notify_object)]


ACTION_KINDS = ("execute", "patch", "retry", "notify")  # also the kinds of the action ledger


def action_kind(item: BaseModel) -> str:
    """The kind of a parsed action item (`ExecuteItem` is an execute...)."""
    return next(kind for kind in ACTION_KINDS if hasattr(item, kind))


def _action_kind(value: Any) -> str | None:
    if isinstance(value, BaseModel):
        return action_kind(value)
    if isinstance(value, dict) and len(value) == 1:
        kind = next(iter(value))
        return kind if kind in ACTION_KINDS else None
    return None


Action = Annotated[
    Annotated[ExecuteItem, Tag("execute")]
    | Annotated[PatchItem, Tag("patch")]
    | Annotated[RetryItem, Tag("retry")]
    | Annotated[NotifyItem, Tag("notify")],
    Discriminator(
        _action_kind,
        custom_error_type="action",
        custom_error_message="an action is a mapping with one key: execute, patch, retry or notify",
    ),
]


class Rule(Strict):
    notebook: NotebookReference
    statuses: Annotated[list[Status], BeforeValidator(_listify), Field(min_length=1)]
    when: Template | None = None
    actions: list[Action] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_retry(self) -> Rule:
        if sum(isinstance(a, RetryItem) for a in self.actions) > 1:
            raise ValueError("a rule has at most one retry action")
        return self

    @property
    def retry(self) -> Retry | None:
        return next((a.retry for a in self.actions if isinstance(a, RetryItem)), None)


class PipelineFile(Strict):
    version: Literal[1] = 1
    notebooks: dict[Name, NotebookEntry] = Field(default_factory=dict)
    channels: dict[Name, ChannelConfig] = Field(default_factory=dict)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    pipelines: dict[Name, Pipeline] = Field(default_factory=dict)
    rules: dict[Name, Rule] = Field(default_factory=dict)

    def notebook_reference(self, reference: str) -> str:
        """The id or name a reference stands for: an alias's target, else itself."""
        entry = self.notebooks.get(reference)
        return entry.reference if entry else reference
