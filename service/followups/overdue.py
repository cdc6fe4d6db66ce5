"""Stuck runs: the scheduler's look for executions still queued or in progress past their
deadline, on the notebooks that a rule on `overdue` names.

A run's deadline is the time it was queued plus its `maxAllowedRunMinutes` (Losant's record;
assumed until read) plus the queue and output slack of the pipeline file's `alerts: overdue:`.
The candidates come from the status indexes (queued, inProgress), newest first, so a pass costs
what is running, never what has ended. Each execution found past its deadline is handed to the
rules once: the rules' effects are keyed by the execution (and the alert counts it once), and
the execution is then noted as handled, so another pass or another scheduler does not decide it
again. The `overdue` alert resolves when the run ends (`AlertNotifier.run_ended`, called for
every terminal execution); a run that ended while it was being handed on is caught here.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import redis as redis_lib

from service import defaults, keys
from service.events.starter import allowed_run_seconds
from service.events.store import ExecutionStore
from service.followups.alerts.notifier import AlertNotifier
from service.followups.pipeline_file.registry import Loaded
from service.followups.rules import RulesEngine


class OverdueRuns:
    def __init__(
        self,
        redis: redis_lib.Redis,
        store: ExecutionStore,
        rules: RulesEngine,
        notifier: AlertNotifier,
        *,
        ttl: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.redis = redis
        self.store = store
        self.rules = rules
        self.notifier = notifier
        self.ttl = ttl
        self.clock = clock

    def check(self, loaded: Loaded | None) -> int:
        """Hand the executions newly found past their deadline to the rules on `overdue`;
        returns how many."""
        notebooks = self.rules.overdue_notebooks(loaded)
        if loaded is None or not notebooks:
            return 0
        now = self.clock()
        slack = loaded.file.alerts.overdue.slack
        self.redis.zremrangebyscore(keys.overdue_handled(), "-inf", now - self.ttl)
        # No run is overdue before its slack has passed, whatever its maxAllowedRunMinutes.
        ids = self.store.running_before(int((now - slack) * 1000), defaults.OVERDUE_BATCH)
        if not ids:
            return 0
        handled = self.redis.zmscore(keys.overdue_handled(), ids)
        fresh = [i for i, score in zip(ids, handled, strict=True) if score is None]
        found = 0
        for record in self.store.get_many(fresh):
            if record.notebook_id not in notebooks or record.is_terminal:
                continue
            queued = record.queued_ms / 1000 if record.queued_ms else now
            if now < queued + allowed_run_seconds(record, slack):
                continue
            self.rules.apply(loaded, self.rules.decide_overdue(loaded, record), of_step=False)
            self.redis.zadd(keys.overdue_handled(), {record.id: now}, nx=True)
            self.redis.expire(keys.overdue_handled(), self.ttl)
            found += 1
            ended = self.store.get(record.id)
            if ended is not None and ended.is_terminal:
                self.notifier.run_ended(ended)  # it ended before its alert counted it
        return found
