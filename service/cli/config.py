"""`nbrelay config`: show and check the configuration."""

from __future__ import annotations

import click

from service.config import DEPLOYMENT_REQUIRED, Settings, sources


@click.group()
def config() -> None:
    """Show or check the configuration read from the environment, .env and .nbrelay/env."""


@config.command("show")
def show() -> None:
    """Print every setting, secrets masked, with where each set one came from."""
    found = sources()
    for variable, value in Settings.from_env().describe().items():
        value_and_origin = found.get(variable, ("", ""))
        origin = f"  # from {value_and_origin[1]}" if value_and_origin[0].strip() else ""
        click.echo(f"{variable}={value}{origin}")


@config.command("check")
def check() -> None:
    """Check that a deployment (web, worker, scheduler) has everything it needs."""
    Settings.from_env().require(*DEPLOYMENT_REQUIRED)
    click.echo("configuration is valid")
