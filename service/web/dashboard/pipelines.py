"""Pipelines: the pipelines of the file in force with their graphs and recent runs, one
pipeline's page with the form that starts a run, and one run's page (its graph coloured by step
state, a Gantt of its steps' executions, attempts and reasons).

Starting a run calls `followups.start_run`, as `POST /api/pipelines/<name>/runs` does.
"""

from __future__ import annotations

import time
from typing import Any

from flask import render_template, request, url_for
from markupsafe import Markup

from service import defaults, json_input
from service.errors import UsageProblem
from service.events.records import TERMINAL_STATUSES
from service.followups.pipeline_file.model import Pipeline
from service.followups.pipelines.runs import Run, RunNotFound, RunStatus
from service.times import duration_text, iso, parse_time_ms
from service.web.dashboard import charts, dag
from service.web.dashboard.blueprint import answer, bp
from service.web.resources import get_components

REQUESTED_BY = "dashboard"


@bp.get("/pipelines")
def pipelines():
    followups = get_components().followups
    loaded = followups.pipeline_file()
    shown = []
    for name, pipeline in loaded.file.pipelines.items() if loaded else []:
        runs = followups.runs(name, defaults.API_RECENT_RUNS)
        shown.append((name, pipeline, graph(name, pipeline), runs))
    return render_template(
        "dashboard/pipelines.html",
        live=any(run.status is RunStatus.RUNNING for *_, runs in shown for run in runs),
        loaded=loaded,
        pipelines=shown,
    )


@bp.get("/pipelines/<name>")
def pipeline(name: str):
    followups = get_components().followups
    loaded = followups.pipeline_file()
    found = loaded.file.pipelines.get(name) if loaded else None
    if found is None:
        return not_found(f"No pipeline named {name} in the pipeline file in force.")
    runs = followups.runs(name, defaults.DASHBOARD_ROWS)
    return render_template(
        "dashboard/pipeline.html",
        live=any(run.status is RunStatus.RUNNING for run in runs),
        name=name,
        pipeline=found,
        graph=graph(name, found),
        runs=runs,
        duration=duration_text,
    )


@bp.post("/pipelines/<name>/runs")
def start_run(name: str):
    """Start a run with the form's `params` (a JSON object), as the API does."""
    back = url_for("dashboard.pipeline", name=name)
    try:
        params = json_input.loads(request.form.get("params") or "{}")
    except json_input.MalformedJson as exc:
        return answer(back, f"params: {exc}", error=True)
    if not isinstance(params, dict):
        return answer(back, "params must be a JSON object", error=True)
    try:
        run = get_components().followups.start_run(name, params, REQUESTED_BY)
    except RunNotFound as exc:
        return answer(url_for("dashboard.pipelines"), str(exc), error=True)
    except UsageProblem as exc:
        return answer(back, str(exc), error=True)
    return answer(url_for("dashboard.run", run_id=run.id), f"Run {run.id} started")


@bp.get("/runs/<run_id>")
def run(run_id: str):
    try:
        found = get_components().followups.run(run_id)
    except RunNotFound:
        return not_found(f"No run {run_id}: never started, or past its retention.")
    definition = found.pipeline_definition
    running = found.status is RunStatus.RUNNING
    now = time.time() if running else _seconds(found.finished_at) or time.time()
    return render_template(
        "dashboard/run.html",
        live=running,
        run=found,
        definition=definition,
        graph=dag.render(
            {key: step.after for key, step in definition.steps.items()},
            labels={key: step.notebook for key, step in found.steps.items()},
            name="run",
            states={key: step.state.value for key, step in found.steps.items()},
            titles={key: _step_title(found, key) for key in found.steps},
            hrefs={key: f"#step-{key}" for key in found.steps},
        ),
        gantt=gantt(found, now),
        retry_at={key: iso(s.retry_at) for key, s in found.steps.items() if s.retry_at},
    )


def not_found(message: str) -> tuple[str, int]:
    page = render_template(
        "dashboard/not_found.html",
        message=message,
        back=url_for("dashboard.pipelines"),
        back_label="the pipelines",
    )
    return page, 404


def graph(name: str, pipeline: Pipeline) -> Markup:
    """A pipeline's steps as a graph, uncoloured, each labelled with its notebook."""
    return dag.render(
        {key: step.after for key, step in pipeline.steps.items()},
        labels={key: step.notebook for key, step in pipeline.steps.items()},
        name=name,
    )


def gantt(run: Run, now: float) -> Markup:
    """One bar per execution of each step (attempts in order), from queued to completed,
    coloured by the execution's status and linked to its page."""
    bars = []
    for key in run.pipeline_definition.steps:
        for entry in sorted(run.steps[key].executions, key=lambda e: e["attempt"]):
            bars.append(_bar(key, entry))
    return charts.time_bars(bars, now=now)


def _bar(step: str, entry: dict[str, Any]) -> charts.Bar:
    status = entry.get("status") or "queued"
    start = _seconds(entry.get("queuedAt")) or _seconds(entry.get("startedAt"))
    end = _seconds(entry.get("completedAt"))
    if end is None and status in TERMINAL_STATUSES:
        end = start  # ended without finishing the notebook (canceled, timed out while queued)
    execution_id = entry.get("id")
    title = f"{step} attempt {entry['attempt']}: {status}"
    if start is not None and end is not None:
        title += f", {duration_text(end - start)}"
    return charts.Bar(
        label=f"{step} #{entry['attempt']}",
        start=start,
        end=end,
        css=status,
        title=title,
        href=url_for("dashboard.execution", execution_id=execution_id) if execution_id else None,
    )


def _step_title(run: Run, key: str) -> str:
    step = run.steps[key]
    text = f"{key} ({step.notebook}): {step.state.value}"
    if step.attempt > 1:
        text += f", attempt {step.attempt}"
    if step.reason:
        text += f": {step.reason}"
    return text


def _seconds(moment: Any) -> float | None:
    milliseconds = parse_time_ms(moment)
    return milliseconds / 1000 if milliseconds is not None else None
