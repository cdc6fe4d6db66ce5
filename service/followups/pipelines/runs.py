"""Pipeline runs: the state of each step of one run of a pipeline, and how it moves.

A run keeps a copy of its pipeline's definition, so a reload of the pipeline file never changes
a run that has started. Steps go pending → running → completed | failed | skipped. A step starts
once every step it comes after has ended in a way its failure policy allows; its context is
rendered then, from the run's parameters and the upstream executions, and kept, so a retry runs
with the same context. The transitions are pure functions of the run; `RunStore` applies them
under an optimistic transaction, so concurrent workers (two branches ending together) never lose
an update. What to start next is derived from the state itself (`launches`), so a worker that
dies after saving a run but before starting its next steps leaves nothing behind: whoever looks
at the run next starts them, under the same deterministic action keys.

A step skipped because a step failed (the run failed there, or it comes after a step that failed
with `on_failure: skip`, directly or through other skipped steps) notes that step: a skipped
step never runs, so it raises no alert of its own, and the failed step's alert names it
(`step_failure`).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, cast

import redis as redis_lib

from service import defaults, keys
from service.errors import NbrelayError, UsageProblem
from service.followups.messages import StepFailure
from service.followups.pipeline_file.model import Pipeline, Retry
from service.followups.pipeline_file.templates import (
    TemplateError,
    evaluate,
    execution_variables,
    render,
)
from service.marker import read_marker
from service.times import iso


class StepState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"


ENDED = (StepState.COMPLETED, StepState.FAILED, StepState.SKIPPED)


class RunStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


class RunNotFound(NbrelayError):
    """No run with that id is stored (never started, or past its retention)."""


@dataclass
class Step:
    notebook: str
    state: StepState = StepState.PENDING
    attempt: int = 0
    context: dict[str, Any] | None = None
    relative_to: Any = None
    started_at: str | None = None
    finished_at: str | None = None
    retry_at: float | None = None
    reason: str | None = None
    skipped_for: str | None = None  # the failed step this one was skipped because of
    execution: dict[str, Any] | None = None  # Losant's record of the execution it ended with
    executions: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Run:
    id: str
    pipeline: str
    params: dict[str, Any]
    definition: dict[str, Any]
    requested_by: str
    created_at: str
    status: RunStatus = RunStatus.RUNNING
    finished_at: str | None = None
    steps: dict[str, Step] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> Run:
        data = json.loads(raw)
        steps = {}
        for key, value in data.pop("steps").items():
            value["state"] = StepState(value["state"])
            steps[key] = Step(**value)
        data["status"] = RunStatus(data["status"])
        return cls(**data, steps=steps)

    @property
    def pipeline_definition(self) -> Pipeline:
        return Pipeline.model_validate(self.definition)


@dataclass(frozen=True)
class Launch:
    """An execution a step needs: attempt `attempt` of `step`, not before `due_at` (None: now)."""

    run_id: str
    step: str
    attempt: int
    due_at: float | None

    @property
    def action_key(self) -> str:
        return keys.step_action(self.run_id, self.step, self.attempt)


def check_params(pipeline: Pipeline, given: dict[str, Any]) -> dict[str, Any]:
    """The run's parameters: the given ones over the declared defaults. Unknown names and
    missing required ones (declared with no default) are usage problems."""
    unknown = sorted(set(given) - set(pipeline.params))
    if unknown:
        known = ", ".join(sorted(pipeline.params)) or "none"
        raise UsageProblem(f"unknown parameter {unknown[0]!r} (declared: {known})")
    params = {**pipeline.params, **given}
    missing = sorted(name for name, value in params.items() if value is None)
    if missing:
        raise UsageProblem(f"parameter {missing[0]!r} is required")
    return params


def new_run(
    name: str,
    pipeline: Pipeline,
    params: dict[str, Any],
    notebooks: Callable[[str], str],
    requested_by: str,
    now: float,
) -> Run:
    """A run of `pipeline` with every step pending. `notebooks` turns a step's notebook
    reference (alias, id or name) into the id or name to execute."""
    return Run(
        id=secrets.token_hex(8),
        pipeline=name,
        params=check_params(pipeline, params),
        definition=pipeline.model_dump(mode="json"),
        requested_by=requested_by,
        created_at=iso(now),
        steps={
            key: Step(notebook=notebooks(step.notebook)) for key, step in pipeline.steps.items()
        },
    )


def advance(run: Run, now: float) -> None:
    """Start, skip or fail every pending step whose upstream steps have all ended, until nothing
    changes; then settle the run's status."""
    pipeline = run.pipeline_definition
    changed = run.status is RunStatus.RUNNING
    while changed:
        changed = False
        for key, definition in pipeline.steps.items():
            step = run.steps[key]
            if step.state is not StepState.PENDING or run.status is not RunStatus.RUNNING:
                continue
            upstream = [run.steps[name] for name in definition.after]
            if any(u.state not in ENDED for u in upstream):
                continue
            changed = True
            blocking = [
                name
                for name in definition.after
                if run.steps[name].state is StepState.SKIPPED
                or (
                    run.steps[name].state is StepState.FAILED
                    and pipeline.steps[name].on_failure == "skip"
                )
            ]
            if blocking:
                upstream_step = run.steps[blocking[0]]
                cause = blocking[0] if upstream_step.state is StepState.FAILED else None
                reason = f"upstream step {blocking[0]} {upstream_step.state}"
                _skip(step, reason, now, cause or upstream_step.skipped_for)
                continue
            variables = _variables(run, pipeline, key)
            try:
                if definition.when is not None and not evaluate(definition.when, variables):
                    _skip(step, "condition is false", now)
                    continue
                context = render(definition.context, variables, "context")
                relative_to = render(definition.relative_to, variables, "relative_to")
            except TemplateError as exc:
                _fail(run, pipeline, key, str(exc), now)
                continue
            step.state, step.attempt = StepState.RUNNING, 1
            step.context, step.relative_to, step.started_at = context, relative_to, iso(now)
    _settle(run, now)


def launches(run: Run) -> list[Launch]:
    """The executions the run is waiting to have started: the current attempt of every running
    step that has no execution for it yet."""
    wanted = []
    for key, step in run.steps.items():
        if step.state is StepState.RUNNING and not any(
            e["attempt"] == step.attempt for e in step.executions
        ):
            wanted.append(Launch(run.id, key, step.attempt, step.retry_at))
    return wanted


def awaited(run: Run) -> list[str]:
    """The executions the run is waiting to see end: the one started for the current attempt of
    every running step."""
    return [
        e["id"]
        for step in run.steps.values()
        if step.state is StepState.RUNNING
        for e in step.executions
        if e["attempt"] == step.attempt
    ]


def execution_started(run: Run, step_key: str, attempt: int, execution_id: str) -> None:
    """Note the execution Losant queued for an attempt of a step."""
    _note_execution(run.steps[step_key], execution_id, attempt, {"status": "queued"})


def launch_failed(run: Run, step_key: str, attempt: int, error: str, now: float) -> None:
    """An attempt could not be started at all (no such notebook, bad request...)."""
    step = run.steps[step_key]
    if step.state is StepState.RUNNING and step.attempt == attempt:
        _fail(run, run.pipeline_definition, step_key, error, now)
        advance(run, now)


def execution_ended(
    run: Run,
    step_key: str,
    attempt: int,
    record: dict[str, Any],
    now: float,
    fallback_retry: Retry | None = None,
) -> None:
    """An execution of a step reached a terminal status: the step completes, is retried (its own
    `retry:`, else `fallback_retry` from a rule), or fails."""
    step = run.steps.get(step_key)
    if step is None:
        return
    execution_id = record.get("id") or record.get("notebookExecutionId") or ""
    _note_execution(step, execution_id, attempt, record)
    if step.state is not StepState.RUNNING or step.attempt != attempt:
        return  # a stale attempt, or news already handled
    pipeline = run.pipeline_definition
    status = record.get("status")
    if status == "completed":
        step.state, step.execution, step.finished_at = StepState.COMPLETED, record, iso(now)
        step.retry_at = None
    else:
        retry = pipeline.steps[step_key].retry or fallback_retry
        if retry is not None and attempt < retry.max_attempts:
            step.attempt = attempt + 1
            step.retry_at = now + retry.delay_before(attempt + 1)
            return
        step.execution = record
        _fail(run, pipeline, step_key, _describe_failure(record), now)
    advance(run, now)


def step_failure(run: Run, step_key: str, execution_id: str) -> StepFailure | None:
    """The failure of `step_key` when execution `execution_id` is the one it failed with, naming
    the steps skipped because of it."""
    step = run.steps.get(step_key)
    if (
        step is None
        or step.state is not StepState.FAILED
        or not execution_id
        or (step.execution or {}).get("id") != execution_id
    ):
        return None
    skipped = tuple(
        key
        for key, other in run.steps.items()
        if other.state is StepState.SKIPPED and other.skipped_for == step_key
    )
    return StepFailure(run.pipeline, run.id, step_key, skipped)


def _variables(run: Run, pipeline: Pipeline, key: str) -> dict[str, Any]:
    steps = {
        name: execution_variables(execution)
        for name in pipeline.upstream(key)
        if (execution := run.steps[name].execution) is not None
    }
    return {"params": run.params, "run": {"id": run.id, "pipeline": run.pipeline}, "steps": steps}


def _note_execution(step: Step, execution_id: str, attempt: int, record: dict[str, Any]) -> None:
    entry = next((e for e in step.executions if e["id"] == execution_id), None)
    if entry is None:
        entry = {"id": execution_id, "attempt": attempt}
        step.executions.append(entry)
    for name, source in (
        ("status", "status"),
        ("queuedAt", "runQueuedAt"),
        ("startedAt", "runStartedAt"),
        ("completedAt", "notebookCompletedAt"),
    ):
        if record.get(source) is not None or name not in entry:
            entry[name] = record.get(source)


def _describe_failure(record: dict[str, Any]) -> str:
    text = f"execution {record.get('id')} ended {record.get('status')}"
    errors = record.get("executionErrors") or []
    if errors:
        first = errors[0]
        detail = f": {first.get('name', '')}: {first.get('message', '')}"
        text += detail[: defaults.STEP_REASON_LENGTH]
    return text


def _skip(step: Step, reason: str, now: float, failed: str | None = None) -> None:
    """Skip `step`; `failed` is the failed step that caused it, if one did."""
    step.state, step.reason, step.finished_at = StepState.SKIPPED, reason, iso(now)
    step.skipped_for = failed


def _fail(run: Run, pipeline: Pipeline, key: str, reason: str, now: float) -> None:
    step = run.steps[key]
    step.state, step.reason, step.finished_at, step.retry_at = (
        StepState.FAILED,
        reason,
        iso(now),
        None,
    )
    if pipeline.steps[key].on_failure == "fail":
        run.status = RunStatus.FAILED
        for other in run.steps.values():
            if other.state is StepState.PENDING:
                _skip(other, f"the run failed at step {key}", now, key)


def _settle(run: Run, now: float) -> None:
    if any(step.state not in ENDED for step in run.steps.values()):
        return
    if run.status is RunStatus.RUNNING:
        pipeline = run.pipeline_definition
        failed = any(
            step.state is StepState.FAILED and pipeline.steps[key].on_failure != "continue"
            for key, step in run.steps.items()
        )
        run.status = RunStatus.FAILED if failed else RunStatus.COMPLETED
    run.finished_at = run.finished_at or iso(now)


class RunStore:
    """Runs in Redis, one JSON document each, changed only through `change`."""

    def __init__(
        self, redis: redis_lib.Redis, *, ttl: int, clock: Callable[[], float] = time.time
    ) -> None:
        self.redis = redis
        self.ttl = ttl
        self.clock = clock

    def create(self, run: Run) -> None:
        now = self.clock()
        pipe = self.redis.pipeline()
        pipe.set(keys.run(run.id), run.to_json(), ex=self.ttl)
        pipe.zadd(keys.runs_of(run.pipeline), {run.id: now})
        pipe.expire(keys.runs_of(run.pipeline), self.ttl)
        if run.finished_at is None:
            pipe.zadd(keys.active_runs(), {run.id: now})
        pipe.zremrangebyscore(keys.runs_of(run.pipeline), "-inf", now - self.ttl)
        pipe.execute()

    def get(self, run_id: str) -> Run:
        raw = self.redis.get(keys.run(run_id))
        if not raw:
            raise RunNotFound(f"no run {run_id}")
        return Run.from_json(raw)

    def recent(self, pipeline: str, limit: int) -> list[Run]:
        """The pipeline's most recent runs, newest first."""
        ids = cast(list[str], self.redis.zrevrange(keys.runs_of(pipeline), 0, limit - 1))
        raws = self.redis.mget([keys.run(i) for i in ids]) if ids else []
        return [Run.from_json(raw) for raw in raws if raw]

    def step_failure(self, execution: dict[str, Any]) -> StepFailure | None:
        """The pipeline step that failed with `execution` (Losant's record of it), if any. The
        marker in its context names the run and step; only the execution the step recorded
        counts, so a copied marker names nothing."""
        marker = read_marker(execution.get("templateContext"))
        if marker is None or not marker.is_step:
            return None
        try:
            run = self.get(marker.run or "")
        except RunNotFound:
            return None
        execution_id = execution.get("id") or execution.get("notebookExecutionId") or ""
        return step_failure(run, marker.step or "", execution_id)

    def active(self) -> list[str]:
        """Runs that have a step not yet ended."""
        return cast(list[str], self.redis.zrange(keys.active_runs(), 0, -1))

    def forget_active(self, run_id: str) -> None:
        """Stop looking at an active run whose record is gone (expired under retention)."""
        self.redis.zrem(keys.active_runs(), run_id)

    def change(self, run_id: str, transition: Callable[[Run, float], None]) -> Run:
        """Apply `transition(run, now)` atomically; returns the run as saved."""
        saved: list[Run] = []

        def attempt(pipe: redis_lib.client.Pipeline) -> None:
            saved.clear()
            raw = pipe.get(keys.run(run_id))
            if not raw:
                raise RunNotFound(f"no run {run_id}")
            run = Run.from_json(raw)
            before = raw if isinstance(raw, str) else raw.decode()
            transition(run, self.clock())
            saved.append(run)
            after = run.to_json()
            if after == before:
                return
            pipe.multi()
            pipe.set(keys.run(run_id), after, keepttl=True)
            if run.finished_at is not None:
                pipe.zrem(keys.active_runs(), run_id)

        self.redis.transaction(attempt, keys.run(run_id))
        return saved[0]
