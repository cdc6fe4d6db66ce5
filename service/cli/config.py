"""`nbrelay config`: show and check the configuration."""

from __future__ import annotations

import click

from service.config import DEPLOYMENT_REQUIRED, Settings


@click.group()
def config() -> None:
    """Show or check the configuration read from the environment and .env."""


@config.command("show")
def show() -> None:
    """Print every setting, secrets masked."""
    for variable, value in Settings.from_env().describe().items():
        click.echo(f"{variable}={value}")


@config.command("check")
def check() -> None:
    """Check that a deployment (web, worker, scheduler) has everything it needs."""
    Settings.from_env().require(*DEPLOYMENT_REQUIRED)
    click.echo("configuration is valid")
