"""Losant's notebook records as pydantic models (shapes from `reference/losant-schemas/`).

Attributes are snake_case; Losant's camelCase names are the aliases, so
`model_dump(mode="json", by_alias=True, exclude_none=True)` gives Losant's record back. Every model
keeps fields Losant adds later (`extra="allow"`) instead of failing on them, and no field is
required beyond what nbrelay cannot work without (ids, a notebook's name).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, PrivateAttr
from pydantic.alias_generators import to_camel

TERMINAL_STATUSES = frozenset({"completed", "errored", "timeout", "canceled"})


def _losant_time(value: datetime) -> str:
    """Losant's own date format: UTC, milliseconds, `Z` (2016-06-13T04:00:00.000Z)."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


LosantTime = Annotated[datetime, PlainSerializer(_losant_time, return_type=str, when_used="json")]


class LosantModel(BaseModel):
    model_config = ConfigDict(extra="allow", alias_generator=to_camel, populate_by_name=True)


class NotebookStats(LosantModel):
    minutes_this_period: float | None = None
    runs_this_period: float | None = None
    errors_this_period: float | None = None


class Notebook(LosantModel):
    """A notebook (`notebook` schema). `inputs`/`outputs` stay plain dicts: their many variants
    are Losant's to validate, nbrelay only passes them through (e.g. in a patch)."""

    id: str
    name: str
    notebook_id: str | None = None
    application_id: str | None = None
    creation_date: LosantTime | None = None
    last_updated: LosantTime | None = None
    description: str | None = None
    jupyter_file_name: str | None = None
    jupyter_file_url: str | None = None
    image_version: str | None = None
    inputs: list[dict[str, Any]] = Field(default_factory=list)
    outputs: list[dict[str, Any]] = Field(default_factory=list)
    stats: NotebookStats | None = None


class NotebookPage(LosantModel):
    """One page of the notebook list (`notebooks` schema); `page` counts from 0."""

    items: list[Notebook] = Field(default_factory=list)
    count: int | None = None
    total_count: int | None = None
    per_page: int | None = None
    page: int | None = None
    filter: str | None = None
    filter_field: str | None = None
    sort_field: str | None = None
    sort_direction: str | None = None
    application_id: str | None = None


class ExecutionError(LosantModel):
    name: str | None = None
    message: str | None = None


class Execution(LosantModel):
    """One entry of a notebook's execution log (`notebookExecutionLogs` schema).

    `status` is kept as a string, not an enum, so a status Losant introduces later is stored
    rather than rejected.
    """

    id: str
    notebook_execution_id: str | None = None
    notebook_id: str | None = None
    application_id: str | None = None
    image_version: str | None = None
    status: str | None = None
    execution_relative_to: LosantTime | None = None
    max_allowed_run_minutes: float | None = None
    source_type: str | None = None
    source_id: str | None = None
    run_queued_at: LosantTime | None = None
    run_started_at: LosantTime | None = None
    inputs_completed_at: LosantTime | None = None
    notebook_completed_at: LosantTime | None = None
    outputs_completed_at: LosantTime | None = None
    template_context: str | None = None
    input_info: dict[str, dict[str, Any]] = Field(default_factory=dict)
    output_info: dict[str, dict[str, Any]] = Field(default_factory=dict)
    execution_errors: list[ExecutionError] = Field(default_factory=list)
    _source: dict[str, Any] | None = PrivateAttr(default=None)

    @property
    def as_given(self) -> dict[str, Any]:
        """The entry exactly as Losant gave it (when the client kept it), else as this model
        reads it."""
        if self._source is not None:
            return self._source
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    @property
    def is_terminal(self) -> bool:
        """Whether the execution has ended (completed, errored, timeout or canceled)."""
        return self.status in TERMINAL_STATUSES


class ExecutionQueued(LosantModel):
    """Losant's answer to `execute` (`successWithExecutionId`)."""

    execution_id: str
    success: bool | None = None


class MinuteCount(LosantModel):
    date: LosantTime | None = None
    minutes: int | None = None
    completed: int | None = None
    canceled: int | None = None
    errored: int | None = None
    timeout: int | None = None


class MinuteCounts(LosantModel):
    """Notebook minutes and terminal runs per day (`notebookMinuteCounts` schema)."""

    start: LosantTime | None = None
    end: LosantTime | None = None
    counts: list[MinuteCount] = Field(default_factory=list)


class JobEnqueued(LosantModel):
    """Losant's answer to `requestInputDataExport` (`jobEnqueuedResult`)."""

    job_id: str | None = None
    job_queued: bool | None = None
    success: bool | None = None
