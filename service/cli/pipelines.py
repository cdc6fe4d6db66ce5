"""`nbrelay pipelines`: check a pipeline file; start and follow pipeline runs."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from service import defaults, json_input
from service.cli.params import POSITIVE
from service.cli.progress import Progress, output_links, run_segments
from service.cli.session import connect, explained
from service.config import Settings
from service.errors import NbrelayError, UsageProblem
from service.followups.pipeline_file.validation import (
    PipelineFileInvalid,
    load_file,
    losant_resolver,
    summary,
)
from service.followups.pipelines.runs import Run, RunNotFound, RunStatus
from service.losant import LosantClient

if TYPE_CHECKING:  # imported when a command runs: it brings in the metrics
    from service.followups.facade import Followups


@click.group()
def pipelines() -> None:
    """Check pipeline files and run pipelines."""


@pipelines.command("validate")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--offline",
    is_flag=True,
    help="Do not look notebook references up in Losant even when an API token is configured.",
)
@click.pass_context
def validate(ctx: click.Context, file: Path, offline: bool) -> None:
    """Check FILE and print every problem as FILE:LINE: PATH: MESSAGE (exit status 2).

    With LOSANT_API_TOKEN and LOSANT_APPLICATION_ID set, every notebook reference must name an
    existing notebook.
    """
    settings = Settings.from_env()
    client = None
    resolver = None
    if not offline and settings.losant_api_token and settings.losant_application_id:
        client = LosantClient.from_settings(settings)
        resolver = losant_resolver(client, settings.losant_application_id)
    try:
        with explained(settings):
            pipeline_file = load_file(file, resolver=resolver)
    except PipelineFileInvalid as exc:
        for line in exc.report():
            click.echo(line)
        click.echo(f"{file.name}: {len(exc.problems)} problem(s)", err=True)
        ctx.exit(2)
    finally:
        if client is not None:
            client.close()
    checked = "notebooks checked in Losant" if resolver else "notebooks not checked"
    click.echo(f"{file.name}: valid: {summary(pipeline_file)} ({checked})")


def _parse_param(text: str) -> tuple[str, object]:
    name, sep, raw = text.partition("=")
    if not sep or not name:
        raise UsageProblem(f"--param {text!r}: expected NAME=VALUE")
    try:
        value = json_input.loads(raw)
    except json_input.MalformedJson:
        value = raw
    return name, value


@pipelines.command("start")
@click.argument("name")
@click.option(
    "--param",
    "params",
    multiple=True,
    metavar="NAME=VALUE",
    help="A run parameter (repeatable); VALUE is read as JSON when it is JSON, else as text.",
)
@click.option("--wait", is_flag=True, help="Follow the run until it ends.")
@click.option(
    "--timeout", type=POSITIVE, default=None, help="Give up waiting after this many seconds."
)
def start(name: str, params: tuple[str, ...], wait: bool, timeout: float | None) -> None:
    """Start a run of pipeline NAME and print its id."""
    values = dict(map(_parse_param, params))
    with connect() as components:
        try:
            run = components.followups.start_run(name, values, "cli")
        except RunNotFound as exc:
            raise UsageProblem(str(exc)) from None
        click.echo(run.id)
        if wait:
            final = _follow(components.followups, run.id, timeout)
            _print_run(final)
            if final.status is not RunStatus.COMPLETED:
                raise NbrelayError(f"run {run.id} of {name} {final.status.value}")


@pipelines.command("show")
@click.argument("run_id")
def show(run_id: str) -> None:
    """Print a run's status and the state of each of its steps."""
    with connect() as components:
        try:
            run = components.followups.run(run_id)
        except RunNotFound as exc:
            raise UsageProblem(str(exc)) from None
        _print_run(run)


def _follow(followups: Followups, run_id: str, timeout: float | None) -> Run:
    """Show the run's progress until it ends; the ended run."""
    with Progress() as progress:
        while True:
            run = followups.run(run_id)
            progress.show(run_segments(run))
            if run.finished_at:
                return run
            if timeout is not None and time.monotonic() - progress.started > timeout:
                raise NbrelayError(f"run {run_id} is still running after {timeout:g}s")
            time.sleep(defaults.WAIT_POLL_INTERVAL)


def _print_run(run: Run) -> None:
    click.echo(f"run {run.id} of {run.pipeline}: {run.status.value} (started {run.created_at})")
    for key, step in run.steps.items():
        executions = ", ".join(f"{e['id']} {e.get('status')}" for e in step.executions)
        reason = f" ({step.reason})" if step.reason else ""
        click.echo(
            f"  {key}: {step.state.value}{reason}" + (f" [{executions}]" if executions else "")
        )
        for name, url in output_links(step.execution):
            click.echo(f"    output {name}: {url}")
