"""`nbrelay doctor`: check a deployment before it goes live."""

from __future__ import annotations

import json

import click

from service.config import Settings
from service.doctor import FAIL, OK, WARN, Doctor

MARKS = {OK: "✓", WARN: "!", FAIL: "✗"}


@click.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="One JSON object for scripts.")
@click.pass_context
def doctor(ctx: click.Context, as_json: bool) -> None:
    """Check everything a deployment needs: configuration, Redis, Losant (token, application,
    scopes, pipeline notebooks, clock), the public URL, workers and the scheduler.

    One line per check (✓ passed, ! warning, ✗ failed with its fix). Exit status 0 when nothing
    failed, 1 otherwise, 2 for a malformed setting."""
    settings = Settings.from_env()
    from service.composition import Components

    components = Components.from_settings(settings) if settings.redis_url else None
    try:
        checks = Doctor(
            settings,
            components.redis if components else None,
            components.queues if components else None,
        ).run()
    finally:
        if components is not None:
            components.close()
    failed = [check for check in checks if not check.ok]
    if as_json:
        report = {"ok": not failed, "checks": [check.as_json() for check in checks]}
        click.echo(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        for check in checks:
            fix = f" — fix: {check.fix}" if check.fix and check.level != OK else ""
            click.echo(f"{MARKS[check.level]} {check.name}: {check.detail}{fix}")
        verdict = "ready to go live" if not failed else f"{len(failed)} of {len(checks)} failed"
        click.echo(verdict)
    ctx.exit(1 if failed else 0)
