"""Prometheus metrics of nbrelay.

Counters and histograms are updated where things happen (web, worker, scheduler). Under
gunicorn, and whenever several nbrelay processes share a host, `PROMETHEUS_MULTIPROC_DIR` names a
directory where every process writes its values and `/metrics` adds them up; the variable must be
set before this module is first imported (the `nbrelay` commands see to that). Gauges that
describe shared state (queue depth and age, executions by status, notebooks waiting for a sync,
dead letters) are read from Redis when `/metrics` is scraped, so every web replica reports the
same numbers and nothing has to keep them up to date.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from service import jobs

if TYPE_CHECKING:
    from service.context import Context

CALLBACKS_RECEIVED = Counter(
    "nbrelay_callbacks_received_total",
    "Callbacks and relay requests accepted (202)",
    ["source"],
)
CALLBACKS_REJECTED = Counter(
    "nbrelay_callbacks_rejected_total",
    "Callbacks and relay requests refused",
    ["source", "reason"],
)
SYNC_REQUESTS = Counter(
    "nbrelay_sync_requests_total",
    "Requests to sync a notebook, by reason and whether they enqueued a job or joined one",
    ["reason", "outcome"],
)
SYNCS = Counter("nbrelay_syncs_total", "Sync jobs run, by outcome", ["outcome"])
SYNC_DURATION = Histogram(
    "nbrelay_sync_duration_seconds",
    "Time one sync job took",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
LOSANT_REQUESTS = Counter(
    "nbrelay_losant_requests_total",
    "Requests to the Losant API, by endpoint and HTTP status (`error` when no answer came)",
    ["endpoint", "status"],
)
LOSANT_LATENCY = Histogram(
    "nbrelay_losant_request_duration_seconds",
    "Latency of requests to the Losant API",
    ["endpoint"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
TRANSITIONS = Counter(
    "nbrelay_terminal_transitions_total",
    "Executions seen reaching a terminal status (each counted once)",
    ["status"],
)
EXECUTIONS_STARTED = Counter(
    "nbrelay_executions_started_total",
    "Executions requested through nbrelay, by outcome",
    ["outcome"],
)
RECONCILER_ACTIONS = Counter(
    "nbrelay_reconciler_actions_total",
    "What the reconciler did: checks of started runs, polls, recoveries, overdue runs",
    ["action"],
)
ACTIONS = Counter(
    "nbrelay_actions_total",
    "Follow-up actions (execute, retry, patch, notify), by outcome: done, failed for good, "
    "postponed after a transient failure, skipped (already done or held by another worker)",
    ["kind", "outcome"],
)
NOTIFICATIONS = Counter(
    "nbrelay_notifications_total",
    "Alert messages by channel kind, event (firing, resolved, completed) and outcome",
    ["channel", "event", "outcome"],
)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def mark_process_dead(pid: int) -> None:
    """Let a dead process's live gauges go (gunicorn calls this when a worker exits)."""
    if multiprocess_dir():
        multiprocess.mark_process_dead(pid)


class _ProcessCollector(Collector):
    """This process's own metrics, for when no multiprocess directory is in use."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


class RedisStateCollector(Collector):
    """Gauges computed from Redis at scrape time."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def collect(self) -> Iterator[Metric]:
        now = time.time()
        depth = GaugeMetricFamily(
            "nbrelay_queue_depth", "Jobs waiting in a queue (ready to run)", labels=["queue"]
        )
        age = GaugeMetricFamily(
            "nbrelay_queue_oldest_age_seconds",
            "Age of the oldest job waiting in a queue (0 when empty)",
            labels=["queue"],
        )
        dead = GaugeMetricFamily(
            "nbrelay_dead_letters", "Failed jobs in the dead-letter registry", labels=["queue"]
        )
        for stats in jobs.queue_stats(self.ctx.rq_redis, now):
            depth.add_metric([stats.name], stats.depth)
            age.add_metric([stats.name], stats.oldest_age)
            dead.add_metric([stats.name], stats.dead_letters)
        yield from (depth, age, dead)

        store = self.ctx.store
        by_status = GaugeMetricFamily(
            "nbrelay_executions", "Stored executions by last known status", labels=["status"]
        )
        for status, count in store.count_by_status().items():
            by_status.add_metric([status], count)
        yield by_status
        dirty_count, oldest = store.sync_backlog(now)
        yield GaugeMetricFamily(
            "nbrelay_dirty_notebooks", "Notebooks waiting for a sync", value=dirty_count
        )
        yield GaugeMetricFamily(
            "nbrelay_dirty_oldest_age_seconds",
            "How long the notebook waiting longest for a sync has waited",
            value=oldest,
        )
        yield GaugeMetricFamily(
            "nbrelay_pending_executions",
            "Executions started through nbrelay that are not known to be terminal",
            value=store.pending_count(),
        )
        followups = self.ctx.followups
        alerts = GaugeMetricFamily("nbrelay_alerts", "Alerts by state", labels=["state"])
        for state, count in followups.alerts.count_by_state().items():
            alerts.add_metric([state], count)
        yield alerts
        yield GaugeMetricFamily(
            "nbrelay_pipeline_runs_active",
            "Pipeline runs with a step still to finish",
            value=len(followups.runs.active()),
        )


def exposition(ctx: Context) -> bytes:
    """The text of `/metrics`: every process's counters plus the Redis gauges."""
    registry = CollectorRegistry()
    if multiprocess_dir():
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_ProcessCollector())
    registry.register(RedisStateCollector(ctx))
    return generate_latest(registry)
