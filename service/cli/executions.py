"""`nbrelay run`, `nbrelay executions`, `nbrelay show`: start runs and read the history."""

from __future__ import annotations

import getpass
import json
import socket
from typing import Any

import click

from service import defaults, keys
from service.cli.params import POSITIVE
from service.cli.progress import Progress, execution_segments, output_links
from service.cli.session import connect
from service.config import OBJECT_ID
from service.errors import NbrelayError, UsageProblem
from service.events.records import STATUSES
from service.times import parse_instant


def _instant(value: str | None, option: str) -> int | None:
    if value is None:
        return None
    try:
        return parse_instant(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from None


def _summary(view: dict[str, Any]) -> list[str]:
    losant = view.get("losant") or {}
    lines = [f"execution {view['id']}: {view.get('status') or 'not read from Losant yet'}"]
    for field in (
        "runQueuedAt",
        "runStartedAt",
        "inputsCompletedAt",
        "notebookCompletedAt",
        "outputsCompletedAt",
    ):
        if losant.get(field):
            lines.append(f"  {field}: {losant[field]}")
    for error in losant.get("executionErrors") or []:
        lines.append(f"  error: {error.get('name', '')}: {error.get('message', '')}")
    for name, url in output_links(losant):
        lines.append(f"  output {name}: {url}")
    return lines


@click.command("run")
@click.argument("notebook")
@click.option("--context", "context_json", help="The run's context, a JSON object.")
@click.option(
    "--relative-to",
    help="Query Time of the run: milliseconds since epoch or an ISO 8601 date-time.",
)
@click.option("--wait", is_flag=True, help="Follow the run to its end; exit 0 only if completed.")
@click.option(
    "--timeout",
    type=POSITIVE,
    help="Seconds --wait waits (default: the notebook's maxAllowedRunMinutes plus slack).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the stored record as JSON.")
def run(
    notebook: str,
    context_json: str | None,
    relative_to: str | None,
    wait: bool,
    timeout: float | None,
    as_json: bool,
) -> None:
    """Start an execution of NOTEBOOK (an id or a name) with a signed callback URL."""
    from rq import Worker

    from service.events.starter import parse_user_context, wait_for_terminal

    with connect() as components:
        components.settings.require(
            "LOSANT_API_TOKEN", "LOSANT_APPLICATION_ID", "NBRELAY_PUBLIC_URL"
        )
        context = parse_user_context(context_json)
        when = _instant(relative_to, "--relative-to")
        if wait and Worker.count(connection=components.rq_redis) == 0:
            raise NbrelayError(
                "no nbrelay worker is running, so nothing would follow the run; start `nbrelay "
                "worker` (or `nbrelay up`) first"
            )
        started = components.starter.start(
            notebook,
            requested_by=f"cli:{getpass.getuser()}@{socket.gethostname()}",
            context=context,
            relative_to=when,
        )
        click.echo(
            f"started execution {started.execution_id} of notebook {started.notebook_name} "
            f"({started.notebook_id})",
            err=as_json,
        )
        if not wait:
            if as_json:
                click.echo(json.dumps(started.as_json(), indent=2))
            return
        with Progress() as progress:
            record = wait_for_terminal(
                components.store,
                started.execution_id,
                timeout=timeout,
                on_look=lambda r: progress.show(execution_segments(started.execution_id, r)),
            )
    if as_json:
        click.echo(json.dumps(record.as_json(), indent=2))
    else:
        click.echo("\n".join(_summary(record.as_json())))
    if record.status != "completed":
        raise SystemExit(1)


@click.command("executions")
@click.option("--notebook", help="Only this notebook (id or name).")
@click.option("--status", "statuses", multiple=True, help="Only this status (repeatable).")
@click.option("--since", help="Queued at or after (ms since epoch or ISO 8601).")
@click.option("--until", help="Queued at or before (ms since epoch or ISO 8601).")
@click.option(
    "--limit", type=click.IntRange(1, 1000), default=defaults.CLI_EXECUTIONS_PAGE, show_default=True
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines, one record each.")
def executions(
    notebook: str | None,
    statuses: tuple[str, ...],
    since: str | None,
    until: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List stored executions, newest first."""
    unknown = [s for s in statuses if s not in STATUSES]
    if unknown:
        raise click.BadParameter(
            f"{unknown[0]!r} is not one of {', '.join(STATUSES)}", param_hint="--status"
        )
    since_ms, until_ms = _instant(since, "--since"), _instant(until, "--until")
    with connect() as components:
        application_id = components.settings.losant_application_id
        notebook_id = None
        if notebook is not None:
            if OBJECT_ID.fullmatch(notebook):
                notebook_id = notebook
            else:
                components.settings.require("LOSANT_API_TOKEN", "LOSANT_APPLICATION_ID")
                notebook_id = components.losant().find_notebook(application_id or "", notebook).id
        page = components.store.query(
            application_id=application_id,
            notebook_id=notebook_id,
            statuses=list(statuses),
            since_ms=since_ms,
            until_ms=until_ms,
            limit=limit,
        )
        names = components.store.notebook_names()
        warnings = (
            components.unseen.warnings(application_id, notebook_id, notebook)
            if notebook_id is not None and application_id
            else []
        )
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    for record in page.items:
        if as_json:
            click.echo(json.dumps(record.as_json()))
            continue
        losant = record.losant or {}
        name = names.get(keys.notebook_ref(record.application_id, record.notebook_id), "")
        click.echo(
            "  ".join(
                [
                    record.id,
                    f"{record.status or 'requested':<10}",
                    losant.get("runQueuedAt") or record.meta.get("requested_at", ""),
                    name or record.notebook_id,
                    record.meta.get("requested_by", ""),
                ]
            ).rstrip()
        )


@click.command("show")
@click.argument("execution")
def show(execution: str) -> None:
    """Print one stored execution (Losant's record and nbrelay's metadata) as JSON."""
    if not OBJECT_ID.fullmatch(execution):
        raise UsageProblem("EXECUTION must be an execution id (24 hexadecimal characters)")
    with connect() as components:
        record = components.store.get(execution)
    if record is None:
        raise NbrelayError(f"no execution {execution} is stored")
    click.echo(json.dumps(record.as_json(), indent=2))
