"""`nbrelay actions`: the follow-up actions nbrelay claimed and what came of them."""

from __future__ import annotations

import json

import click

from service import defaults
from service.cli.session import connect
from service.errors import UsageProblem
from service.followups.actions.ledger import ActionNotFound, ActionRecord
from service.followups.pipeline_file.model import ACTION_KINDS


@click.group()
def actions() -> None:
    """Follow-up actions: executions, retries, patches and notifications."""


@actions.command("list")
@click.option("--kind", type=click.Choice(ACTION_KINDS))
@click.option(
    "--limit", type=click.IntRange(1, 1000), default=defaults.CLI_ACTIONS_PAGE, show_default=True
)
def list_actions(kind: str | None, limit: int) -> None:
    """The most recent actions, newest first."""
    with connect() as components:
        for record in components.followups.actions(limit, kind):
            click.echo(_line(record))


@actions.command("show")
@click.argument("key")
def show(key: str) -> None:
    """One action as JSON: its spec, attempts and outcome (a patch's values before and after)."""
    with connect() as components:
        record = components.followups.action(key)
        if record is None:
            raise UsageProblem(f"no action {key}")
        click.echo(json.dumps(record.describe(), indent=2))


@actions.command("undo")
@click.argument("key")
def undo(key: str) -> None:
    """Set back what the patch KEY changed; prints the key of the undo action."""
    with connect() as components:
        try:
            click.echo(components.followups.undo_patch(key))
        except ActionNotFound as exc:
            raise UsageProblem(str(exc)) from None


def _line(record: ActionRecord) -> str:
    error = f" ({record.error})" if record.error else ""
    return f"{record.state.value:8} {record.kind:8} {record.key}{error}"
