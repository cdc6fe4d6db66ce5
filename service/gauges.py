"""Gauges of shared state, computed from Redis when `/metrics` is scraped, so every web replica
reports the same numbers and nothing has to keep them up to date: queue depth and age, dead
letters, executions by status, notebooks waiting for a sync, pending runs, alerts by state and
active pipeline runs."""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from service.events.store import ExecutionStore
from service.followups.facade import Followups
from service.queues import Queues


class StateGauges(Collector):
    def __init__(self, queues: Queues, store: ExecutionStore, followups: Followups) -> None:
        self.queues = queues
        self.store = store
        self.followups = followups

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
        for stats in self.queues.stats(now):
            depth.add_metric([stats.name], stats.depth)
            age.add_metric([stats.name], stats.oldest_age)
            dead.add_metric([stats.name], stats.dead_letters)
        yield from (depth, age, dead)

        by_status = GaugeMetricFamily(
            "nbrelay_executions", "Stored executions by last known status", labels=["status"]
        )
        for status, count in self.store.count_by_status().items():
            by_status.add_metric([status], count)
        yield by_status
        dirty_count, oldest = self.store.sync_backlog(now)
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
            value=self.store.pending_count(),
        )
        alerts = GaugeMetricFamily("nbrelay_alerts", "Alerts by state", labels=["state"])
        for state, count in self.followups.alert_counts().items():
            alerts.add_metric([state], count)
        yield alerts
        yield GaugeMetricFamily(
            "nbrelay_pipeline_runs_active",
            "Pipeline runs with a step still to finish",
            value=len(self.followups.active_runs()),
        )
