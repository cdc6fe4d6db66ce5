"""`nbrelay up`: run everything on this machine."""

from __future__ import annotations

from pathlib import Path

import click

from sandbox import defaults as sandbox_defaults
from service import defaults
from service.cli.sandbox import require_sandbox_extra
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
def up(host: str, port: int, sandbox_port: int, workers: int) -> None:
    """Web, workers and scheduler; plus Redis and the sandbox with demo notebooks when they are
    not configured. State is kept under .nbrelay/. Ctrl-C or SIGTERM stops everything."""
    require_sandbox_extra()
    from service import logs
    from service.runtime.up import Up, UpOptions

    settings = Settings.from_env()
    if settings.redis_url:  # else an embedded Redis is started
        require_redis(settings)
    logs.configure("up", level="WARNING", secrets=settings.log_secrets)
    options = UpOptions(host, port, sandbox_port, workers, Path(defaults.DATA_DIR))
    raise SystemExit(Up(options, settings, click.echo).run())
