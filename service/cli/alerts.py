"""`nbrelay alerts`: try a notification channel."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import click

from service.cli.session import connect
from service.config import Settings
from service.errors import NbrelayError, UsageProblem
from service.followups.channels import build_channel
from service.followups.channels.delivery import ONCE, deliver
from service.followups.messages import AlertMessage, Event
from service.followups.pipeline_file.validation import load_file


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
        for failure in followups.failed_deliveries():
            click.echo(f"failed   {failure['channel']}: {failure['error']}")


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
