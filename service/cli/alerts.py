"""`nbrelay alerts`: alert states, silences, and trying a notification channel."""

from __future__ import annotations

import getpass
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import click

from service.cli.session import connect
from service.config import Settings
from service.errors import NbrelayError, UsageProblem
from service.followups.alerts.silences import Silence, SilenceNotFound
from service.followups.channels import build_channel
from service.followups.channels.delivery import ONCE, deliver
from service.followups.messages import AlertMessage, Event
from service.followups.pipeline_file.validation import load_file
from service.times import iso


@click.group()
def alerts() -> None:
    """Alerts and their channels."""


@alerts.command("list")
def list_alerts() -> None:
    """Print every alert's state, and the notifications that failed for good."""
    with connect() as components:
        followups = components.followups
        for alert in followups.alerts():
            name = alert.notebook_name or alert.notebook_id
            click.echo(
                f"{alert.state.value:8} {name} {alert.failure_class.value}: "
                f"{alert.failures} failure(s), {alert.notifications} message(s) in episode "
                f"{alert.episode}, channels {', '.join(alert.channels) or '-'}"
            )
            for silence in followups.silenced_by(alert):
                click.echo(f"         silenced by {silence.id} until {iso(silence.ends_at)}")
        for failure in followups.failed_deliveries():
            click.echo(f"failed   {failure['channel']}: {failure['error']}")


@alerts.command("silence")
@click.option("--notebook", help="Silence the alerts of this notebook (id or name).")
@click.option("--rule", help="Silence the alerts this rule raises.")
@click.option("--alert", "alert_id", metavar="ID", help="Silence this one alert.")
@click.option("--for", "duration", metavar="DURATION", help="How long, e.g. 30m, 2h, 1d.")
@click.option("--until", metavar="TIME", help="Until when: ISO 8601 with its zone.")
@click.option("--comment", required=True, help="Why (shown wherever the silence is).")
@click.option("--author", help="Who silences (default: your login name).")
def silence(
    notebook: str | None,
    rule: str | None,
    alert_id: str | None,
    duration: str | None,
    until: str | None,
    comment: str,
    author: str | None,
) -> None:
    """Silence alerts for a while: they keep their state but send nothing. Prints the id."""
    named = {"notebook": notebook, "rule": rule, "alert": alert_id}
    matcher = {kind: value for kind, value in named.items() if value is not None}
    if len(matcher) != 1:
        raise UsageProblem("name exactly one of --notebook, --rule or --alert")
    if (duration is None) == (until is None):
        raise UsageProblem("give either --for or --until")
    with connect() as components:
        created = components.followups.silence(
            matcher,
            ends_at=until,
            duration=duration,
            author=author or getpass.getuser(),
            comment=comment,
        )
    click.echo(created.id)


@alerts.command("silences")
def silences() -> None:
    """Print the silences: those in force first, then those that ended."""
    with connect() as components:
        found = components.followups.silences()
    now = time.time()
    for silence in found:
        click.echo(_silence_line(silence, now))
    if not found:
        click.echo("no silences")


@alerts.command("unsilence")
@click.argument("silence_id", metavar="ID")
def unsilence(silence_id: str) -> None:
    """End the silence ID now."""
    with connect() as components:
        try:
            ended = components.followups.unsilence(silence_id, "cli")
        except SilenceNotFound as exc:
            raise UsageProblem(str(exc)) from None
    click.echo(_silence_line(ended, time.time()))


def _silence_line(silence: Silence, now: float) -> str:
    state = "active" if silence.active(now) else "ended"
    return (
        f"{silence.id} {state:6} {silence.matcher} {silence.value} until {iso(silence.ends_at)} "
        f"by {silence.author}: {silence.comment}"
    )


@alerts.command("test")
@click.argument("channel")
@click.option(
    "--file",
    "path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Pipeline file to read the channel from (default: NBRELAY_PIPELINES).",
)
def test(channel: str, path: Path | None) -> None:
    """Send one test notification through CHANNEL, once: a failure is reported, not retried."""
    path = path or Settings.from_env().pipelines_path
    if path is None:
        raise UsageProblem("no pipeline file: set NBRELAY_PIPELINES or pass --file")
    pipeline_file = load_file(path)
    config = pipeline_file.channels.get(channel)
    if config is None:
        known = ", ".join(sorted(pipeline_file.channels)) or "none"
        raise UsageProblem(f"no channel named {channel!r} in {path.name} (channels: {known})")
    message = AlertMessage(
        id=f"msg_test_{uuid.uuid4().hex[:16]}",
        event=Event.TEST,
        created_at=datetime.now(UTC),
        channel=channel,
    )
    target = build_channel(channel, config)
    result = deliver(target, message, ONCE)
    if not result.delivered:
        raise NbrelayError(
            f"test notification through {channel} failed: {result.error}; "
            f"check channel {channel} in {path.name}"
        )
    click.echo(f"sent a test notification through {channel} ({target.kind})")
