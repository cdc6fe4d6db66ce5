"""The `nbrelay` command: a thin layer over the library, one module per area."""

from __future__ import annotations

import sys

import click

from service import __version__
from service.cli.actions import actions
from service.cli.alerts import alerts
from service.cli.config import config
from service.cli.dead_letters import dead_letters
from service.cli.doctor import doctor
from service.cli.executions import executions, run, show
from service.cli.pipelines import pipelines
from service.cli.sandbox import sandbox
from service.cli.serve import scheduler, web, worker
from service.cli.up import up
from service.errors import NbrelayError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="nbrelay")
def cli() -> None:
    """Self-hosted event service for Losant Notebooks."""


cli.add_command(actions)
cli.add_command(alerts)
cli.add_command(config)
cli.add_command(pipelines)
cli.add_command(sandbox)
for command in (up, web, worker, scheduler, run, executions, show, dead_letters, doctor):
    cli.add_command(command)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: every error is one line on stderr; bad usage exits 2, failures 1."""
    try:
        result = cli.main(args=argv, prog_name="nbrelay", standalone_mode=False)
    except click.exceptions.Abort:
        fail("aborted", 1)
    except click.UsageError as exc:
        fail(exc.format_message(), 2)
    except click.ClickException as exc:
        fail(exc.format_message(), exc.exit_code)
    except NbrelayError as exc:
        fail(str(exc), exc.exit_code)
    sys.exit(result if isinstance(result, int) else 0)


def fail(message: str, code: int) -> None:
    click.echo(f"nbrelay: error: {' '.join(message.split())}", err=True)
    sys.exit(code)
