"""What happened in each episode of an alert, for `GET /api/alerts/<id>`: when it opened and the
executions that failed in it, each message to each channel and what came of it (delivered,
failed, silenced), and when and by which execution it resolved.

An alert's state keeps only its current episode; its timelines are kept apart, one capped list
per episode, the latest ALERT_EPISODES_KEPT episodes, each expiring with the retention. State
changes are written in the same transaction as the state (by `Alerts`); messages are noted by
the sender when their delivery ends.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import redis as redis_lib

from service import defaults, keys


@dataclass
class Episode:
    number: int
    opened_at: float | None = None
    resolved_at: float | None = None
    resolved_by: str | None = None
    executions: list[str] = field(default_factory=list)  # those that failed, oldest first
    events: list[dict[str, Any]] = field(default_factory=list)  # oldest first


class AlertTimeline:
    def __init__(self, redis: redis_lib.Redis, *, ttl: int) -> None:
        self.redis = redis
        self.ttl = ttl

    def opened(self, pipe: redis_lib.client.Pipeline, alert_id: str, episode: int) -> None:
        """Queue on `pipe` forgetting the episode that a new one pushes out of those kept."""
        if episode > defaults.ALERT_EPISODES_KEPT:
            pipe.delete(keys.alert_episode(alert_id, episode - defaults.ALERT_EPISODES_KEPT))

    def note(self, alert_id: str, episode: int, event: dict[str, Any], now: float) -> None:
        """Keep one message's outcome in an episode of the alert (`event`: event, channel,
        message, and what came of it)."""
        pipe = self.redis.pipeline(transaction=False)
        self.append(pipe, alert_id, episode, event, now)
        pipe.execute()

    def episodes(self, alert_id: str, current: int) -> list[Episode]:
        """The kept episodes of an alert whose current episode is `current`, newest first."""
        numbers = range(current, max(current - defaults.ALERT_EPISODES_KEPT, 0), -1)
        pipe = self.redis.pipeline(transaction=False)
        for number in numbers:
            pipe.lrange(keys.alert_episode(alert_id, number), 0, -1)
        found = []
        for number, raws in zip(numbers, pipe.execute(), strict=True):
            if raws or number == current:
                found.append(_episode(number, [json.loads(raw) for raw in raws]))
        return found

    def append(
        self,
        pipe: redis_lib.client.Pipeline,
        alert_id: str,
        episode: int,
        event: dict[str, Any],
        now: float,
    ) -> None:
        """Queue on `pipe` one event of an episode."""
        key = keys.alert_episode(alert_id, episode)
        pipe.rpush(key, json.dumps({"at": now, **event}, separators=(",", ":")))
        pipe.ltrim(key, -defaults.ALERT_EPISODE_EVENTS_KEPT, -1)
        pipe.expire(key, self.ttl)


def _episode(number: int, events: list[dict[str, Any]]) -> Episode:
    episode = Episode(number, events=events)
    for event in events:
        if event["event"] == "opened":
            episode.opened_at = event["at"]
        if event["event"] in ("opened", "failed") and event.get("execution"):
            episode.executions.append(event["execution"])
        if event["event"] == "resolved":
            episode.resolved_at, episode.resolved_by = event["at"], event.get("execution")
    return episode
