"""Alert states, after Alertmanager. An alert is one notebook failing one way (errored, timed
out, canceled, no callback, a run stuck past its deadline). Its first failure opens an episode
that waits `group_wait` for more failures before the first message; while it keeps firing it is
repeated every `repeat_interval`; the notebook's next completed run resolves it (with a message,
when one was sent and `send_resolved` is on). An `overdue` alert is the exception: it resolves
when the stuck runs it counts have all ended, however they ended. Those settings are the
alerting rule's `notify` over the global `alerts:` block. Every rule that notifies about one
notebook failing one way feeds the same alert, so a failure pages once whoever asked: its
messages go to every channel those rules name, with the strictest of their settings. The
notifications themselves are actions of the ledger, under keys made of the alert, its episode
and the message's number, so each is sent once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, TypeVar, cast

import redis as redis_lib

from service import defaults, keys
from service.followups.alerts.timeline import AlertTimeline
from service.followups.due import DueSchedule
from service.followups.messages import FailureClass, Severity
from service.followups.pipeline_file.model import AlertSettings


class AlertState(StrEnum):
    PENDING = "pending"  # failing, waiting out group_wait before the first message
    FIRING = "firing"  # messages sent; repeated every repeat_interval
    RESOLVED = "resolved"  # the notebook completed again


@dataclass
class Alert:
    id: str
    notebook_id: str
    failure_class: FailureClass
    notebook_name: str | None = None
    application_id: str | None = None
    state: AlertState = AlertState.RESOLVED
    episode: int = 0
    channels: list[str] = field(default_factory=list)
    group_wait: float = defaults.ALERT_GROUP_WAIT
    repeat_interval: float = defaults.ALERT_REPEAT_INTERVAL
    send_resolved: bool = True
    severity: Severity = "error"
    failures: int = 0
    first_failure_at: float | None = None
    last_failure_at: float | None = None
    last_execution: dict[str, Any] | None = None
    observed: list[str] = field(default_factory=list)
    notifications: int = 0
    last_notified_at: float | None = None
    next_at: float | None = None
    resolved_at: float | None = None
    resolved_by: dict[str, Any] | None = None
    stuck: list[str] = field(default_factory=list)  # overdue: the runs still stuck
    rules: list[str] = field(default_factory=list)  # the rules that raised this episode

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @property
    def settings(self) -> AlertSettings:
        return AlertSettings.model_construct(
            group_wait=self.group_wait,
            repeat_interval=self.repeat_interval,
            send_resolved=self.send_resolved,
            severity=self.severity,
        )

    def use(self, settings: AlertSettings) -> None:
        """Take `settings` on, and move the next message to when they make it due."""
        self.group_wait, self.repeat_interval = settings.group_wait, settings.repeat_interval
        self.send_resolved, self.severity = settings.send_resolved, settings.severity
        if self.state is AlertState.PENDING and self.first_failure_at is not None:
            self.next_at = self.first_failure_at + self.group_wait
        elif self.state is AlertState.FIRING and self.last_notified_at is not None:
            self.next_at = self.last_notified_at + self.repeat_interval

    def notice_keys(self) -> list[str]:
        """The keys of every notify action the current episode may have opened: each firing
        message so far and the resolved one, to each channel (those never opened are simply
        not in the ledger)."""
        numbers: list[int | None] = [*range(1, self.notifications + 1), None]
        return [
            keys.alert_notice(self.id, self.episode, n, c) for n in numbers for c in self.channels
        ]

    @classmethod
    def from_json(cls, raw: str | bytes) -> Alert:
        data = json.loads(raw)
        data["state"] = AlertState(data["state"])
        data["failure_class"] = FailureClass(data["failure_class"])
        return cls(**data)


@dataclass(frozen=True)
class Due:
    """A notification an alert owes now: message number `number` of `episode` (or the
    resolution), to each of `channels`."""

    alert: Alert
    number: int | None  # None for the resolved message
    channels: tuple[str, ...]

    def action_key(self, channel: str) -> str:
        return keys.alert_notice(self.alert.id, self.alert.episode, self.number, channel)


# What a change of an alert returns: the alert to save, or None to leave nothing stored.
_Changed = TypeVar("_Changed", bound=Alert | None)


class Alerts:
    def __init__(
        self, redis: redis_lib.Redis, *, ttl: int, clock: Callable[[], float] = time.time
    ) -> None:
        self.redis = redis
        self.ttl = ttl
        self.clock = clock
        self._due = DueSchedule(redis, keys.alerts_due())
        self.timeline = AlertTimeline(redis, ttl=ttl)

    def get(
        self, application_id: str, notebook_id: str, failure_class: FailureClass
    ) -> Alert | None:
        raw = self.redis.get(keys.alert(keys.alert_id(application_id, notebook_id, failure_class)))
        return Alert.from_json(raw) if raw else None

    def by_id(self, alert_id: str) -> Alert | None:
        raw = self.redis.get(keys.alert(alert_id))
        return Alert.from_json(raw) if raw else None

    def all(self) -> list[Alert]:
        ids = sorted(cast(set[str], self.redis.smembers(keys.alerts())))
        raws = self.redis.mget([keys.alert(i) for i in ids]) if ids else []
        return [Alert.from_json(raw) for raw in raws if raw]

    def count_by_state(self) -> dict[str, int]:
        counts = dict.fromkeys((state.value for state in AlertState), 0)
        for alert in self.all():
            counts[alert.state.value] += 1
        return counts

    def failed(
        self,
        application_id: str,
        notebook_id: str,
        failure_class: FailureClass,
        execution: dict[str, Any],
        channels: list[str],
        settings: AlertSettings,
        *,
        notebook_name: str | None = None,
        rule: str | None = None,
    ) -> Alert:
        """A failure of the notebook, to be alerted on `channels` with `settings` (by `rule`).
        Opens an episode (due after group_wait) unless one is open. The same execution again
        (another rule notifying about it, a repeated transition) is counted once: it adds its
        channels, and the strictest of the settings apply. A new failure takes its own settings
        on, but the group_wait of an episode already open."""
        identity = keys.alert_id(application_id, notebook_id, failure_class)
        execution_id = str(execution.get("id") or "")

        def change(alert: Alert | None, now: float) -> Alert:
            alert = alert or Alert(
                identity, notebook_id, failure_class, application_id=application_id
            )
            if execution_id and execution_id in (*alert.observed, *alert.stuck):
                if alert.state is not AlertState.RESOLVED:
                    alert.channels = sorted(set(alert.channels) | set(channels))
                    alert.use(alert.settings.strictest(settings))
                return alert
            if alert.state is AlertState.RESOLVED:
                alert.episode += 1
                alert.state, alert.failures, alert.notifications = AlertState.PENDING, 0, 0
                alert.first_failure_at, alert.last_notified_at = now, None
                alert.resolved_at, alert.resolved_by, alert.channels = None, None, []
                alert.rules = []
                alert.use(settings)
            else:
                alert.use(settings.model_copy(update={"group_wait": alert.group_wait}))
            alert.failures += 1
            alert.last_failure_at, alert.last_execution = now, execution
            alert.notebook_name = notebook_name or alert.notebook_name
            alert.channels = sorted(set(alert.channels) | set(channels))
            alert.rules = sorted({*alert.rules, rule} if rule else alert.rules)
            alert.observed = ([execution_id] + alert.observed)[: defaults.ALERT_OBSERVED_KEPT]
            if failure_class is FailureClass.OVERDUE and execution_id:
                alert.stuck.append(execution_id)
            return alert

        return self._change(identity, change)

    def stored_classes(self, application_id: str, notebook_id: str) -> frozenset[FailureClass]:
        """The failure classes the notebook has an alert stored for (open or resolved), looked
        up in one round trip."""
        classes = list(FailureClass)
        with self.redis.pipeline(transaction=False) as pipe:
            for failure_class in classes:
                pipe.exists(keys.alert(keys.alert_id(application_id, notebook_id, failure_class)))
            stored = pipe.execute()
        return frozenset(c for c, exists in zip(classes, stored, strict=True) if exists)

    def completed(
        self,
        application_id: str,
        notebook_id: str,
        execution: dict[str, Any],
        keep: tuple[FailureClass, ...] = (),
        stored: frozenset[FailureClass] | None = None,
    ) -> list[Due]:
        """The notebook completed: resolve each of its open alerts (but those in `keep`, and the
        `overdue` one, which only the end of its stuck runs resolves); the resolved messages
        owed. `stored`: what `stored_classes` said, when the caller just asked."""
        if stored is None:
            stored = self.stored_classes(application_id, notebook_id)
        owed = []
        for failure_class in FailureClass:
            if failure_class not in stored or failure_class in keep:
                continue
            if failure_class is FailureClass.OVERDUE:
                continue
            identity = keys.alert_id(application_id, notebook_id, failure_class)
            result: list[Due] = []

            def change(alert: Alert | None, now: float, result: list[Due] = result) -> Alert | None:
                result.clear()
                if alert is not None:
                    _resolve(alert, now, execution, result)
                return alert

            self._change(identity, change)
            owed.extend(result)
        return owed

    def run_ended(
        self,
        application_id: str,
        notebook_id: str,
        execution: dict[str, Any],
        stored: frozenset[FailureClass] | None = None,
    ) -> list[Due]:
        """An execution of the notebook ended (any terminal status): if the `overdue` alert
        counts it as stuck, it no longer does, and the alert resolves once none is left; the
        resolved message owed. `stored`: what `stored_classes` said, when the caller just
        asked."""
        identity = keys.alert_id(application_id, notebook_id, FailureClass.OVERDUE)
        execution_id = str(execution.get("id") or "")
        if not execution_id:
            return []
        if stored is None:
            if not self.redis.exists(keys.alert(identity)):
                return []
        elif FailureClass.OVERDUE not in stored:
            return []
        result: list[Due] = []

        def change(alert: Alert | None, now: float) -> Alert | None:
            result.clear()
            if alert is None or execution_id not in alert.stuck:
                return None  # nothing to change: leave what is stored
            alert.stuck.remove(execution_id)
            if not alert.stuck:
                _resolve(alert, now, execution, result)
            return alert

        self._change(identity, change)
        return result

    def fire_due(self, limit: int = defaults.DUE_BATCH) -> list[Due]:
        """The firing messages owed now: first messages after group_wait, repeats after
        repeat_interval. The alerts are moved on, so the same message is never owed twice."""
        now = self.clock()
        owed = []
        for identity in self._due.take(now, now + defaults.ALERT_DUE_HOLD, limit):
            result: list[Due] = []

            def change(alert: Alert | None, now: float, result: list[Due] = result) -> Alert | None:
                result.clear()
                if alert is None or alert.state is AlertState.RESOLVED or alert.next_at is None:
                    return alert
                if alert.next_at > now:
                    return alert
                alert.notifications += 1
                alert.state, alert.last_notified_at = AlertState.FIRING, now
                alert.next_at = now + alert.repeat_interval
                result.append(Due(alert, alert.notifications, tuple(alert.channels)))
                return alert

            self._change(identity, change)
            owed.extend(result)
        return owed

    def _change(self, identity: str, change: Callable[[Alert | None, float], _Changed]) -> _Changed:
        """Apply `change` to the stored alert in one optimistic transaction (retried when the
        alert changed meanwhile) and store what it returns; None stores nothing."""
        saved: list[_Changed] = []

        def attempt(pipe: redis_lib.client.Pipeline) -> None:
            saved.clear()
            raw = pipe.get(keys.alert(identity))
            now = self.clock()
            alert = change(Alert.from_json(raw) if raw else None, now)
            saved.append(alert)
            if alert is None:
                return
            pipe.multi()
            self._note_change(pipe, Alert.from_json(raw) if raw else None, alert, now)
            pipe.set(keys.alert(identity), alert.to_json(), ex=self.ttl)
            pipe.sadd(keys.alerts(), identity)
            if alert.next_at is None:
                pipe.zrem(keys.alerts_due(), identity)
            else:
                pipe.zadd(keys.alerts_due(), {identity: alert.next_at})

        self.redis.transaction(attempt, keys.alert(identity))
        return saved[0]

    def _note_change(
        self, pipe: redis_lib.client.Pipeline, before: Alert | None, after: Alert, now: float
    ) -> None:
        """Queue on `pipe` the timeline's events of one change: an episode opened, one more
        failure counted, the episode resolved."""
        execution = (after.last_execution or {}).get("id")
        events = []
        if after.episode != (before.episode if before else 0):
            self.timeline.opened(pipe, after.id, after.episode)
            events.append({"event": "opened", "execution": execution})
        elif before is not None and after.failures > before.failures:
            events.append({"event": "failed", "execution": execution})
        resolved = after.state is AlertState.RESOLVED
        if before is not None and resolved and before.state is not AlertState.RESOLVED:
            events.append({"event": "resolved", "execution": (after.resolved_by or {}).get("id")})
        for event in events:
            self.timeline.append(pipe, after.id, after.episode, event, now)


def _resolve(alert: Alert, now: float, execution: dict[str, Any], owed: list[Due]) -> None:
    """Resolve `alert` (unless it is resolved) by `execution`, noting in `owed` the resolved
    message it owes: one when a firing message was sent and `send_resolved` is on."""
    if alert.state is AlertState.RESOLVED:
        return
    if alert.state is AlertState.FIRING and alert.send_resolved:
        owed.append(Due(alert, None, tuple(alert.channels)))
    alert.state, alert.resolved_at, alert.resolved_by = AlertState.RESOLVED, now, execution
    alert.next_at = None
