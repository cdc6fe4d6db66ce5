"""`nbrelay pipelines`: check a pipeline file; start and follow pipeline runs."""

from __future__ import annotations

from pathlib import Path

import click

from service.config import Settings
from service.losant import LosantClient
from service.pipelines.validation import (
    PipelineFileInvalid,
    load_file,
    losant_resolver,
    summary,
)


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
