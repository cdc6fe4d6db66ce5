"""`nbrelay up`: run everything on this machine."""

from __future__ import annotations

from pathlib import Path

import click

from sandbox import defaults as sandbox_defaults
from service import defaults
from service.cli.sandbox import require_sandbox_extra
from service.cli.serve import configure_logging, log_format_option
from service.cli.session import require_redis
from service.config import Settings


@click.command("up")
@click.option(
    "--host", default=defaults.HOST, show_default=True, help="Address of the web process."
)
@click.option("--port", type=click.IntRange(1, 65535), default=defaults.PORT, show_default=True)
@click.option(
    "--sandbox-port",
    type=click.IntRange(1, 65535),
    default=sandbox_defaults.PORT,
    show_default=True,
    help="Port of the sandbox (started when LOSANT_API_TOKEN is not set).",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 32),
    default=defaults.UP_WORKERS,
    show_default=True,
    help="Worker processes.",
)
@log_format_option
def up(host: str, port: int, sandbox_port: int, workers: int, log_format: str | None) -> None:
    """Web, workers and scheduler; plus Redis and the sandbox with demo notebooks when they are
    not configured. State is kept under .nbrelay/. Ctrl-C or SIGTERM stops everything. Every
    process logs here: human lines on a terminal, JSON lines otherwise."""
    require_sandbox_extra()
    from service.runtime.up import Up, UpOptions

    # Not .nbrelay/env: it describes the instance started here before, not this one.
    settings = Settings.from_env(instance_path=None)
    if settings.redis_url:  # else an embedded Redis is started
        require_redis(settings)
    configure_logging("up", settings, log_format)
    options = UpOptions(host, port, sandbox_port, workers, Path(defaults.DATA_DIR), log_format)
    raise SystemExit(Up(options, settings, click.echo).run())
