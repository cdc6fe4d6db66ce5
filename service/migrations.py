"""Moving data written by an earlier nbrelay to the key layout of this one.

Run by every `nbrelay scheduler` when it starts; each step is idempotent and safe to run from
two processes at once, so a restart or a second scheduler does no harm.

Alert states and notebook histories were once keyed by notebook id alone. They now carry the
application id like every other notebook key; states written before are assigned to the
configured application. An alert keeps its episode, and the records of the notifications already
sent for that episode are copied to their new keys, so that none is sent a second time.
"""

from __future__ import annotations

import json
import logging
from typing import cast

import redis as redis_lib

from service import keys
from service.config import OBJECT_ID

log = logging.getLogger(__name__)

_HISTORIES = (  # (key of an earlier version, key now)
    (keys.legacy_notebook_history, keys.notebook_history),
    (keys.legacy_notebook_history_seen, keys.notebook_history_seen),
)


def migrate(redis: redis_lib.Redis, application_id: str) -> None:
    """Bring the keys of earlier versions into the current layout (`redis` decodes responses)."""
    histories = _scope_histories(redis, application_id)
    alerts = _scope_alerts(redis, application_id)
    if histories or alerts:
        log.info(
            "moved %d notebook histories and %d alerts to keys that name application %s",
            histories,
            alerts,
            application_id,
        )


def _scope_histories(redis: redis_lib.Redis, application_id: str) -> int:
    moved = 0
    for legacy, current in _HISTORIES:
        prefix = legacy("")
        for key in redis.scan_iter(match=f"{prefix}*", count=500):
            notebook_id = key[len(prefix) :]
            if not OBJECT_ID.match(notebook_id):
                continue  # already `<application>:<notebook>`
            if not redis.renamenx(key, current(application_id, notebook_id)):
                redis.delete(key)  # the new layout was written since: it is the newer record
            moved += 1
    return moved


def _scope_alerts(redis: redis_lib.Redis, application_id: str) -> int:
    moved = 0
    for old_id in cast(set[str], redis.smembers(keys.alerts())):
        notebook_id, _, failure_class = old_id.partition(":")
        if not OBJECT_ID.match(notebook_id) or ":" in failure_class:
            continue  # already `<application>:<notebook>:<class>`
        new_id = keys.alert_id(application_id, notebook_id, failure_class)
        raw = redis.get(keys.alert(old_id))
        if raw:
            _move_alert(redis, json.loads(raw), old_id, new_id, application_id)
        with redis.pipeline() as pipe:
            pipe.delete(keys.alert(old_id))
            pipe.srem(keys.alerts(), old_id)
            pipe.zrem(keys.alerts_due(), old_id)
            pipe.execute()
        moved += 1
    return moved


def _move_alert(
    redis: redis_lib.Redis, alert: dict, old_id: str, new_id: str, application_id: str
) -> None:
    ttl_ms = _ttl_ms(redis, keys.alert(old_id))
    due = redis.zscore(keys.alerts_due(), old_id)
    alert["id"], alert["application_id"] = new_id, application_id
    created = redis.set(
        keys.alert(new_id), json.dumps(alert, separators=(",", ":")), nx=True, px=ttl_ms
    )
    if not created:
        return  # the new layout was written since: it is the newer state
    with redis.pipeline() as pipe:
        pipe.sadd(keys.alerts(), new_id)
        if due is not None:
            pipe.zadd(keys.alerts_due(), {new_id: due})
        pipe.execute()
    episode, channels = alert.get("episode", 0), alert.get("channels") or []
    numbers = [*range(1, int(alert.get("notifications") or 0) + 1), None]
    for number in numbers:
        for channel in channels:
            _copy(
                redis,
                keys.action(keys.alert_notice(old_id, episode, number, channel)),
                keys.action(keys.alert_notice(new_id, episode, number, channel)),
            )


def _copy(redis: redis_lib.Redis, source: str, target: str) -> None:
    """Copy a string key with its TTL, unless the target exists."""
    raw = redis.get(source)
    if raw is not None:
        redis.set(target, raw, nx=True, px=_ttl_ms(redis, source))


def _ttl_ms(redis: redis_lib.Redis, key: str) -> int | None:
    """The key's remaining time to live, None when it has none."""
    remaining = redis.pttl(key)
    return remaining if remaining > 0 else None
