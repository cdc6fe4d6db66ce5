"""Silences, after Alertmanager: for a while, the alerts of a notebook (by id or name), of a
rule, or one alert by id send nothing. A silenced alert keeps its state and its timeline; each
message it would have sent is recorded as silenced instead of delivered (`matching` is asked
where a notification is about to be sent). A message owed while silenced is not sent later:
once the silence ends (or is ended early), the alert's next message (its next repeat, or its
resolution) goes out as usual.

A silence is kept until its end plus the retention, so that recently ended ones are listed too.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal, cast, get_args

import redis as redis_lib

from service import defaults, keys, times
from service.errors import NbrelayError, UsageProblem
from service.followups.alerts.state import Alert
from service.followups.pipeline_file.durations import parse_duration

Matcher = Literal["notebook", "rule", "alert"]
MATCHERS: tuple[str, ...] = get_args(Matcher)


class SilenceNotFound(NbrelayError):
    """No silence with that id is kept (never created, or past its retention)."""


@dataclass(frozen=True)
class Silence:
    id: str
    matcher: Matcher  # what `value` names: a notebook (id or name), a rule, an alert id
    value: str
    starts_at: float
    ends_at: float
    author: str
    comment: str
    ended_by: str | None = None  # who ended it early, when someone did

    def active(self, now: float) -> bool:
        return self.starts_at <= now < self.ends_at

    def matches(self, alert: Alert) -> bool:
        if self.matcher == "notebook":
            return self.value in (alert.notebook_id, alert.notebook_name)
        if self.matcher == "rule":
            return self.value in alert.rules
        return self.value == alert.id

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> Silence:
        return cls(**json.loads(raw))


class Silences:
    def __init__(
        self, redis: redis_lib.Redis, *, ttl: int, clock: Callable[[], float] = time.time
    ) -> None:
        self.redis = redis
        self.ttl = ttl
        self.clock = clock

    def create(
        self,
        matcher: Any,
        *,
        ends_at: Any = None,
        duration: Any = None,
        author: Any,
        comment: Any,
    ) -> Silence:
        """A silence from what a caller gave: `matcher` one of {notebook|rule|alert: text}, and
        either `ends_at` (ISO 8601 with its zone) or `duration` ("2h", "1h30m", seconds).
        UsageProblem names what is wrong."""
        now = self.clock()
        kind, value = _matcher(matcher)
        silence = Silence(
            id=uuid.uuid4().hex,
            matcher=kind,
            value=value,
            starts_at=now,
            ends_at=_end(now, ends_at, duration),
            author=_text("author", author),
            comment=_text("comment", comment),
        )
        self._save(silence)
        return silence

    def get(self, silence_id: str) -> Silence:
        raw = self.redis.get(keys.silence(silence_id)) if silence_id.isalnum() else None
        if raw is None:
            raise SilenceNotFound(f"no silence {silence_id}")
        return Silence.from_json(raw)

    def end(self, silence_id: str, ended_by: str) -> Silence:
        """End a silence now (one already over is left as it is)."""
        silence = self.get(silence_id)
        now = self.clock()
        if silence.ends_at <= now:
            return silence
        ended = Silence(**{**asdict(silence), "ends_at": now, "ended_by": ended_by})
        self._save(ended)
        return ended

    def all(self) -> list[Silence]:
        """The silences kept: active ones first, ending soonest first; then those that ended,
        most recently ended first."""
        now = self.clock()
        self.redis.zremrangebyscore(keys.silences(), "-inf", now)
        ids = cast(list[str], self.redis.zrange(keys.silences(), 0, -1))
        raws = self.redis.mget([keys.silence(i) for i in ids]) if ids else []
        found = [Silence.from_json(raw) for raw in raws if raw]
        active = sorted((s for s in found if s.active(now)), key=lambda s: s.ends_at)
        ended = sorted((s for s in found if not s.active(now)), key=lambda s: -s.ends_at)
        return active + ended

    def matching(self, alert: Alert, now: float) -> list[Silence]:
        """The silences in force at `now` that silence `alert`: only those that end after `now`
        are read (a silence is indexed by its end plus the retention)."""
        ids = cast(list[str], self.redis.zrangebyscore(keys.silences(), now + self.ttl, "+inf"))
        raws = self.redis.mget([keys.silence(i) for i in ids]) if ids else []
        found = (Silence.from_json(raw) for raw in raws if raw)
        return [s for s in found if s.active(now) and s.matches(alert)]

    def _save(self, silence: Silence) -> None:
        expires = silence.ends_at + self.ttl
        pipe = self.redis.pipeline()
        pipe.set(keys.silence(silence.id), silence.to_json(), exat=int(expires) + 1)
        pipe.zadd(keys.silences(), {silence.id: expires})
        # the index outlives every silence it lists: none lasts longer than SILENCE_LONGEST
        pipe.expire(keys.silences(), int(self.ttl + defaults.SILENCE_LONGEST) + 1)
        pipe.execute()


def _matcher(matcher: Any) -> tuple[Matcher, str]:
    named = ", ".join(MATCHERS)
    if not isinstance(matcher, dict) or len(matcher) != 1:
        raise UsageProblem(f"matcher must name exactly one of {named}")
    ((kind, value),) = matcher.items()
    if kind not in MATCHERS:
        raise UsageProblem(f"matcher must name exactly one of {named}, not {kind!r}")
    return cast(Matcher, kind), _text(kind, value)


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise UsageProblem(f"{name} must be a non-empty text")
    if len(value) > defaults.SILENCE_TEXT_LENGTH:
        raise UsageProblem(f"{name} must be at most {defaults.SILENCE_TEXT_LENGTH} characters")
    return value.strip()


def _end(now: float, ends_at: Any, duration: Any) -> float:
    if (ends_at is None) == (duration is None):
        raise UsageProblem("give either an end time (endsAt) or a duration, not both")
    if duration is not None:
        try:
            seconds = parse_duration(duration)
        except ValueError as exc:
            raise UsageProblem(f"duration: {exc}") from None
        end = now + seconds
    else:
        end = _instant(ends_at)
    if end <= now:
        raise UsageProblem("a silence must end in the future")
    if end - now > defaults.SILENCE_LONGEST:
        days = int(defaults.SILENCE_LONGEST // 86400)
        raise UsageProblem(f"a silence may last at most {days} days")
    return end


def _instant(value: Any) -> float:
    """Seconds since the epoch of an ISO 8601 date-time that names its zone."""
    wrong = UsageProblem(
        f"endsAt must be an ISO 8601 date-time with its zone, e.g. 2026-05-01T18:00:00Z; "
        f"got {value!r}"
    )
    if not isinstance(value, str):
        raise wrong
    try:
        names_zone = datetime.fromisoformat(value.replace("Z", "+00:00")).tzinfo is not None
        milliseconds = times.parse_instant(value)
    except ValueError:
        raise wrong from None
    if not names_zone:
        raise wrong
    return milliseconds / 1000
