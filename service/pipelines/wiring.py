"""Follow-ups built from a process's Context: its Redis, Losant client, store and queues."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from service import jobs, keys
from service.jobs import ACTIONS_QUEUE, ALERTS_QUEUE
from service.pipelines.actions import Performer
from service.pipelines.followups import Followups
from service.pipelines.registry import PipelineRegistry
from service.store import PipelineRef

if TYPE_CHECKING:
    from service.context import Context

ACTION_FUNCTIONS = {
    "execute": ("workers.actions.perform", ACTIONS_QUEUE),
    "retry": ("workers.actions.perform", ACTIONS_QUEUE),
    "patch": ("workers.actions.perform", ACTIONS_QUEUE),
    "notify": ("workers.alerts.deliver", ALERTS_QUEUE),
}
RESULT_TTL = 3600  # seconds an action job's result is kept


def build(ctx: Context) -> Followups:
    settings = ctx.settings
    application_id = settings.losant_application_id or ""

    def losant() -> tuple[Any, str] | None:
        if settings.losant_api_token and application_id:
            return ctx.losant, application_id
        return None

    def start(notebook, *, context, relative_to, pipeline, requested_by) -> str:
        from service.executions import start_execution

        ref = (
            PipelineRef(pipeline["run"], pipeline["step"], pipeline["attempt"])
            if pipeline
            else None
        )
        started = start_execution(
            ctx,
            notebook,
            requested_by=requested_by,
            context=context,
            relative_to=relative_to,
            pipeline=ref,
        )
        return started.execution_id

    def enqueue(kind: str, key: str) -> None:
        function, queue = ACTION_FUNCTIONS[kind]
        jobs.queue(ctx, queue).enqueue_call(
            function,
            args=(key,),
            timeout=int(settings.action_lease),
            result_ttl=RESULT_TTL,
            failure_ttl=settings.retention_days * 86400,
            description=f"{kind} {key}",
        )

    def notebook_name(notebook_id: str) -> str | None:
        ref = keys.notebook_ref(application_id, notebook_id)
        known = ctx.store.notebook_names().get(ref)
        loaded = None if known else registry.current()
        return known or (loaded.notebook_name(notebook_id) if loaded else None)

    def performer(followups: Followups) -> Performer:
        return Performer(
            ledger=followups.ledger,
            losant=lambda: ctx.losant,
            application_id=application_id,
            start=start,
            pipeline_file=lambda: (loaded := followups.registry.current()) and loaded.file,
            record_delivery_failure=followups.record_delivery_failure,
        )

    registry = PipelineRegistry(ctx.redis, settings.pipelines_path, losant=losant)
    return Followups(
        ctx.redis,
        registry,
        performer,
        enqueue,
        notebook_name=notebook_name,
        retention_days=settings.retention_days,
        action_lease=settings.action_lease,
    )
