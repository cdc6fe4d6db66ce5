"""Building the follow-ups from their collaborators: the one way, used by every process and by
the tests that run follow-ups in-process."""

from __future__ import annotations

import time
from collections.abc import Callable

import redis as redis_lib

from service import defaults
from service.events.logs_limit import LogsCaps
from service.events.store import ExecutionStore
from service.followups.actions.dispatcher import ActionDispatcher, Enqueue
from service.followups.actions.ledger import Ledger
from service.followups.actions.performer import Performer, Starter
from service.followups.alerts.deliveries import FailedDeliveries
from service.followups.alerts.history import NotebookHistory
from service.followups.alerts.notifier import AlertNotifier, NotebookNames
from service.followups.alerts.sender import NotificationSender
from service.followups.alerts.silences import Silences
from service.followups.alerts.state import Alerts
from service.followups.channels.delivery import DEFAULT_CHANNEL_POLICY, RetryPolicy
from service.followups.facade import Followups
from service.followups.overdue import OverdueRuns
from service.followups.pipeline_file.model import PipelineFile
from service.followups.pipeline_file.registry import PipelineRegistry
from service.followups.pipelines.coordinator import RunCoordinator
from service.followups.pipelines.runs import RunStore
from service.followups.rules import RulesEngine
from service.losant import LosantClient


def build_followups(
    redis: redis_lib.Redis,
    registry: PipelineRegistry,
    *,
    losant: Callable[[], LosantClient],
    application_id: str,
    start: Starter,
    enqueue: Enqueue,
    ttl: int,
    known_name: NotebookNames = lambda application_id, notebook_id: None,
    action_lease: float = defaults.ACTION_LEASE,
    channel_policy: RetryPolicy = DEFAULT_CHANNEL_POLICY,
    clock: Callable[[], float] = time.time,
) -> Followups:
    """Follow-ups on `redis` (decoding responses) for the pipeline file of `registry`.

    `start` starts an execution, `enqueue(kind, key, starts_run)` hands an action to a worker,
    `ttl` is the retention in seconds, and `known_name(application, notebook)` is a notebook's
    name as last seen through the API (the pipeline file's names fill in).
    """

    def notebook_name(application: str, notebook_id: str) -> str | None:
        known = known_name(application, notebook_id)
        loaded = None if known else registry.current()
        return known or (loaded.notebook_name(notebook_id) if loaded else None)

    def pipeline_file() -> PipelineFile | None:
        loaded = registry.current()
        return loaded.file if loaded else None

    ledger = Ledger(redis, ttl=ttl, lease=action_lease, clock=clock)
    failed_deliveries = FailedDeliveries(redis, ttl=ttl, clock=clock)
    performer = Performer(ledger, losant, application_id, start, LogsCaps(redis))
    alerts = Alerts(redis, ttl=ttl, clock=clock)
    silences = Silences(redis, ttl=ttl, clock=clock)
    sender = NotificationSender(
        pipeline_file, failed_deliveries, alerts, silences, channel_policy, clock=clock
    )
    handlers = {
        "execute": performer.execute,
        "retry": performer.execute,
        "patch": performer.patch,
        "notify": sender.send,
    }
    actions = ActionDispatcher(ledger, handlers, enqueue, clock=clock)
    runs = RunStore(redis, ttl=ttl, clock=clock)
    notifier = AlertNotifier(
        alerts,
        NotebookHistory(redis, ttl=ttl),
        actions,
        notebook_name,
        runs.step_failure,
        clock=clock,
    )
    rules = RulesEngine(actions, notifier, notebook_name, clock=clock)
    store = ExecutionStore(redis, ttl=ttl)
    coordinator = RunCoordinator(
        runs,
        actions,
        registry,
        stored=store.get,
        fallback_retry=lambda record: rules.decide(registry.current(), record).fallback_retry,
        clock=clock,
    )
    return Followups(
        registry,
        runs,
        coordinator,
        rules,
        actions,
        alerts,
        notifier,
        silences,
        failed_deliveries,
        OverdueRuns(redis, store, rules, notifier, ttl=ttl, clock=clock),
    )
