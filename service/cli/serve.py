"""`nbrelay web`, `nbrelay worker`, `nbrelay scheduler`: the processes of a real deployment.

Each validates the whole deployment configuration first and stops with one line (exit 2) when
something is missing or wrong, and with one line (exit 1) when Redis does not answer. Each
logs on stderr: human lines on a terminal, JSON lines elsewhere (`--log-format` or
NBRELAY_LOG_FORMAT choose), from NBRELAY_LOG_LEVEL up. Modules that create Prometheus
metrics are imported only after `PROMETHEUS_MULTIPROC_DIR` is settled.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

import click

from service import defaults
from service.cli.session import require_redis
from service.config import DEPLOYMENT_REQUIRED, LOG_FORMATS, ConfigError, Settings, parse_bind
from service.queues import QUEUES


def deployment_settings() -> Settings:
    return Settings.from_env().require(*DEPLOYMENT_REQUIRED)


def configure_logging(process: str, settings: Settings, log_format: str | None) -> None:
    """Log as `log_format` (the --log-format option), else as NBRELAY_LOG_FORMAT says, else
    human lines on a terminal and JSON lines elsewhere."""
    from service import logs

    logs.configure(
        process,
        level=settings.log_level,
        secrets=settings.log_secrets,
        log_format=log_format or settings.log_format,
    )


log_format_option = click.option(
    "--log-format",
    type=click.Choice(LOG_FORMATS),
    help="Log lines as JSON or for people (default: NBRELAY_LOG_FORMAT, else human on a "
    "terminal and JSON otherwise).",
)


def serve_metrics(port: int | None) -> None:
    """Expose this process's metrics on `port` (workers and schedulers on other hosts)."""
    if port is not None:
        from prometheus_client import start_http_server

        start_http_server(port)


metrics_port_option = click.option(
    "--metrics-port",
    type=click.IntRange(1, 65535),
    help="Also serve this process's Prometheus metrics on this port.",
)


@click.command("web")
@click.option("--host", default=defaults.HOST, show_default=True, help="Address to bind.")
@click.option("--port", type=click.IntRange(0, 65535), default=defaults.PORT, show_default=True)
@click.option(
    "--admin-bind",
    metavar="HOST:PORT",
    help="Serve the dashboard, the API and /metrics only on this second listener; the first "
    "then serves callbacks, the relay and the health probes alone. Default: NBRELAY_ADMIN_BIND.",
)
@log_format_option
def web(host: str, port: int, admin_bind: str | None, log_format: str | None) -> None:
    """Serve callbacks, the relay, the API, the dashboard and /metrics (gunicorn)."""
    settings = deployment_settings()
    admin = _admin_listener(admin_bind, settings, port)
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        directory = tempfile.mkdtemp(prefix="nbrelay-metrics-")
        atexit.register(_remove_when_exiting, directory, os.getpid())
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    require_redis(settings)
    configure_logging("web", settings, log_format)
    from service.web.server import WebServer

    WebServer(settings, host, port, admin).run()


def _admin_listener(option: str | None, settings: Settings, port: int) -> tuple[str, int] | None:
    """The admin listener's (host, port): --admin-bind, else NBRELAY_ADMIN_BIND, else none."""
    source, value = (
        ("--admin-bind", option)
        if option is not None
        else ("NBRELAY_ADMIN_BIND", settings.admin_bind)
    )
    if value is None:
        return None
    try:
        admin = parse_bind(source, value)
    except ConfigError as exc:
        raise click.BadParameter(exc.problem, param_hint=source) from None
    if admin[1] == port:
        message = f"the admin listener needs a port of its own, not --port {port}"
        raise click.BadParameter(message, param_hint=source)
    return admin


def _remove_when_exiting(directory: str, owner: int) -> None:
    """Remove the metrics directory when gunicorn's master exits. Its forked workers inherit
    this handler and run it when they exit, but must leave the directory to the others."""
    if os.getpid() == owner:
        shutil.rmtree(directory, ignore_errors=True)


@click.command("worker")
@click.option(
    "--queue",
    "queues",
    multiple=True,
    help="Queue to work on (repeatable); default: every nbrelay queue.",
)
@click.option("--burst", is_flag=True, help="Stop when the queues are empty.")
@metrics_port_option
@log_format_option
def worker(
    queues: tuple[str, ...], burst: bool, metrics_port: int | None, log_format: str | None
) -> None:
    """Run jobs: notebook syncs and the other queued work (stops after the current job on
    SIGTERM)."""
    unknown = [name for name in queues if name not in QUEUES]
    if unknown:
        raise click.BadParameter(
            f"unknown queue {unknown[0]!r}; one of {', '.join(QUEUES)}", param_hint="--queue"
        )
    settings = deployment_settings()
    require_redis(settings)
    configure_logging("worker", settings, log_format)
    serve_metrics(metrics_port)
    from workers.runtime import run_worker

    run_worker(settings, queues or QUEUES, burst=burst)


@click.command("scheduler")
@metrics_port_option
@log_format_option
def scheduler(metrics_port: int | None, log_format: str | None) -> None:
    """Run the reconciler: check started runs, poll watched notebooks, restart dead syncs."""
    settings = deployment_settings()
    require_redis(settings)
    configure_logging("scheduler", settings, log_format)
    serve_metrics(metrics_port)
    from workers.runtime import run_scheduler

    run_scheduler(settings)
