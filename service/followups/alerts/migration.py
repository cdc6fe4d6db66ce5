"""Alert states and notebook histories written by an earlier nbrelay, moved to the current keys.

They were once keyed by notebook id alone; they now carry the application id like every other
key of a notebook. Whatever an earlier version wrote is assigned to the configured application.
Every worker and scheduler runs `migrate` when it starts, before it takes a job or a pass; each
step is idempotent and safe while another process runs it too.

An alert keeps its episode. The records of the notifications already sent in that episode are
copied to their new keys first, and the old state is deleted last, so that an interrupted move
never makes the repair pass send a message again. Where the current layout was written since
(by a process of this version while an earlier one still ran), the current state wins and the
earlier one is dropped, with a warning.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
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
    """Move alert states and histories of an earlier version to the current keys (`redis`
    decodes responses). A key that cannot be moved is logged and left where it is."""
    histories = sum(
        _scope_histories(redis, application_id, legacy, current) for legacy, current in _HISTORIES
    )
    alerts = _scope_alerts(redis, application_id)
    if histories or alerts:
        log.info(
            "moved %d notebook histories and %d alerts to keys that name application %s",
            histories,
            alerts,
            application_id,
        )


def _scope_histories(
    redis: redis_lib.Redis,
    application_id: str,
    legacy: Callable[[str], str],
    current: Callable[[str, str], str],
) -> int:
    moved = 0
    prefix = legacy("")
    for key in cast(list[str], list(redis.scan_iter(match=f"{prefix}*", count=1000))):
        notebook_id = key[len(prefix) :]
        if not OBJECT_ID.fullmatch(notebook_id):
            continue  # already `<application>:<notebook>`
        target = current(application_id, notebook_id)
        if not redis.renamenx(key, target):
            log.warning("%s was written again since; the earlier %s is dropped", target, key)
            redis.delete(key)
        moved += 1
    return moved


def _scope_alerts(redis: redis_lib.Redis, application_id: str) -> int:
    moved = 0
    for old_id in sorted(cast(set[str], redis.smembers(keys.alerts()))):
        notebook_id, _, failure_class = old_id.partition(":")
        if not OBJECT_ID.fullmatch(notebook_id) or ":" in failure_class:
            continue  # already `<application>:<notebook>:<class>`
        new_id = keys.alert_id(application_id, notebook_id, failure_class)
        try:
            _move_alert(redis, old_id, new_id, application_id)
        except (ValueError, KeyError, TypeError, redis_lib.ResponseError):
            log.exception("alert %s of an earlier version could not be moved", old_id)
            continue
        moved += 1
    return moved


def _move_alert(redis: redis_lib.Redis, old_id: str, new_id: str, application_id: str) -> None:
    raw = cast(str | None, redis.get(keys.alert(old_id)))
    if raw is not None:
        alert = json.loads(raw)
        alert["id"], alert["application_id"] = new_id, application_id
        encoded = json.dumps(alert, separators=(",", ":"))
        current = redis.get(keys.alert(new_id))
        if current is None or current == encoded:  # not moved yet, or moved half before
            _move(redis, alert, encoded, old_id, new_id)
        else:
            log.warning(
                "alert %s was written again since; the earlier %s is dropped", new_id, old_id
            )
    with redis.pipeline() as pipe:
        pipe.delete(keys.alert(old_id))
        pipe.srem(keys.alerts(), old_id)
        pipe.zrem(keys.alerts_due(), old_id)
        pipe.execute()


def _move(redis: redis_lib.Redis, alert: dict, encoded: str, old_id: str, new_id: str) -> None:
    """The notices of the alert's episode first, then the alert, its membership and due time."""
    episode, channels = int(alert.get("episode") or 0), alert.get("channels") or []
    for number in [*range(1, int(alert.get("notifications") or 0) + 1), None]:
        for channel in channels:
            _copy(
                redis,
                keys.action(keys.alert_notice(old_id, episode, number, channel)),
                keys.action(keys.alert_notice(new_id, episode, number, channel)),
            )
    redis.set(keys.alert(new_id), encoded, nx=True, px=_ttl_ms(redis, keys.alert(old_id)))
    due = redis.zscore(keys.alerts_due(), old_id)
    with redis.pipeline() as pipe:
        pipe.sadd(keys.alerts(), new_id)
        if due is not None:
            pipe.zadd(keys.alerts_due(), {new_id: due})
        pipe.execute()


def _copy(redis: redis_lib.Redis, source: str, target: str) -> None:
    """Copy a string key with its TTL, unless the target exists."""
    raw = redis.get(source)
    if raw is not None:
        redis.set(target, raw, nx=True, px=_ttl_ms(redis, source))


def _ttl_ms(redis: redis_lib.Redis, key: str) -> int | None:
    """The key's remaining time to live, None when it has none."""
    remaining = redis.pttl(key)
    return remaining if remaining > 0 else None
