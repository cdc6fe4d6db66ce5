"""`nbrelay dead-letters`: jobs that failed after their last retry."""

from __future__ import annotations

import click

from service.cli.session import connect


@click.group("dead-letters")
def dead_letters() -> None:
    """Inspect and replay jobs that failed for good."""


@dead_letters.command("list")
def list_letters() -> None:
    """One line per dead letter: job id, failure time, notebook, last error."""
    with connect() as components:
        letters = components.dead_letters.all()
    for letter in letters:
        when = letter.failed_at.isoformat(timespec="seconds") if letter.failed_at else "-"
        what = f"notebook {letter.notebook_id}" if letter.notebook_id else letter.description
        click.echo(f"{letter.job_id}  {when}  {what}  {letter.error}")
    if not letters:
        click.echo("no dead letters", err=True)


@dead_letters.command("replay")
@click.argument("job_ids", nargs=-1)
def replay(job_ids: tuple[str, ...]) -> None:
    """Replay the dead letters JOB_IDS (all of them when none is given)."""
    with connect() as components:
        replayed = components.dead_letters.replay(job_ids or None)
    for job_id in replayed:
        click.echo(f"replayed {job_id}")
    if not replayed:
        click.echo("no dead letters", err=True)
