"""Prometheus metrics of nbrelay.

Counters and histograms are updated where things happen (web, worker, scheduler). Under
gunicorn, and whenever several nbrelay processes share a host, `PROMETHEUS_MULTIPROC_DIR` names a
directory where every process writes its values and `/metrics` adds them up; the variable must be
set before this module is first imported (the `nbrelay` commands see to that). Gauges that
describe shared state are read from Redis at scrape time (`service.gauges`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

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
UNSEEN_EXECUTIONS = Counter(
    "nbrelay_unseen_executions_total",
    "Executions syncs may not have seen: /logs served a full page at its cap that did not reach "
    "back to the notebook's cursor (an upper bound, from Losant's per-day run counts)",
)
LOGS_CAP_DISCOVERED = Counter(
    "nbrelay_logs_cap_discovered_total",
    "Times a sync found Losant's /logs serving fewer runs than `limit` asked for, by how "
    "(rejected: a 400 naming the limit; short: fewer runs than asked while more exist)",
    ["how"],
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
FOREIGN_MARKERS = Counter(
    "nbrelay_foreign_markers_total",
    "Executions carrying nbrelay's marker that nbrelay did not start for it, ignored as a "
    "pipeline step's (step) or a retry's (retry) execution",
    ["kind"],
)
NOTIFICATIONS = Counter(
    "nbrelay_notifications_total",
    "Alert messages by channel kind, event (firing, resolved, completed) and outcome "
    "(delivered, failed, silenced)",
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


def exposition(*collectors: Collector) -> bytes:
    """The text of `/metrics`: every process's counters plus `collectors` (the shared gauges)."""
    registry = CollectorRegistry()
    if multiprocess_dir():
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_ProcessCollector())
    for collector in collectors:
        registry.register(collector)
    return generate_latest(registry)
