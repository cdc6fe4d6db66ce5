"""The long-running processes behind `nbrelay worker` and `nbrelay scheduler`, and what their
jobs work with.

Each process builds its `Components` once (the composition root) and installs it here, because
RQ calls a job function with its arguments only; jobs reach the components through `current()`.
Before it takes a job or a pass, each process moves data an earlier version wrote under other
keys (`service.followups.alerts.migration`).

Workers are RQ `SimpleWorker`s: jobs run in the worker process itself, so the Losant client and
its connection pool are reused from job to job instead of being rebuilt in a fork for every
job. Each worker also runs RQ's delayed-job scheduler (one of them holds its lock at a time;
another takes it over within `RQ_MAINTENANCE_INTERVAL` of the lock's expiry when that one
dies), which moves retried jobs back to their queue when their backoff is over, and a thread that
enqueues the syncs whose wait for more hints is over (`service.events.due_syncs`). SIGTERM or
Ctrl-C lets the current job finish before the worker exits.

A worker outlives a Redis outage: when Redis goes away under RQ, the worker waits for it to
answer again and goes on as a new RQ worker. The job it was running is taken over as after a
crash (its sync or action lease runs out).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Sequence
from types import FrameType

import redis as redis_lib
from rq import SimpleWorker

from service import defaults
from service.composition import Components
from service.config import Settings
from service.events.due_syncs import DueSyncs
from service.followups.alerts.migration import migrate
from service.queues import QUEUES
from workers.scheduler import Scheduler

log = logging.getLogger(__name__)

_current: Components | None = None


def install(components: Components | None) -> None:
    """Make `components` what this process's jobs work with (None forgets them)."""
    global _current
    _current = components


def current() -> Components:
    """The components of this process, built from the environment on first use."""
    global _current
    if _current is None:
        _current = Components.from_settings(Settings.from_env())
    return _current


def rq_log_level(settings: Settings) -> str:
    """RQ's own lines (a line per job, registry cleaning) only at debug: nbrelay logs what its
    jobs do, and RQ's warnings and errors always show."""
    return "DEBUG" if settings.log_level == "debug" else "WARNING"


def run_worker(settings: Settings, queues: Sequence[str] = QUEUES, *, burst: bool = False) -> None:
    components = Components.from_settings(settings)
    install(components)
    _migrate(components)
    due = DueSyncs(components.syncs, components.queues).start()
    try:
        while not _work(components, queues, burst) and _wait_for_redis(components):
            pass
    finally:
        due.stop()
        components.close()


def _work(components: Components, queues: Sequence[str], burst: bool) -> bool:
    """Work as one RQ worker: True when it is done (a stop was asked for, or its burst is over),
    False when it stopped on its own: RQ gives up when Redis goes away under a job (it raises,
    or logs "unhandled exception, quitting" and returns)."""
    worker = SimpleWorker(
        [components.queues.queue(name) for name in queues],
        connection=components.rq_redis,
        maintenance_interval=defaults.RQ_MAINTENANCE_INTERVAL,
        worker_ttl=defaults.RQ_WORKER_TTL,
    )
    log.info("worker %s listening on %s", worker.name, ", ".join(queues))
    level = rq_log_level(components.settings)
    problem: Exception | None = None
    try:
        worker.work(burst=burst, with_scheduler=True, logging_level=level)
    except redis_lib.RedisError as exc:
        problem = exc
    # RQ notes a SIGTERM or SIGINT here (a second one raises SystemExit, which ends the process).
    if worker._shutdown_requested_date is not None or (burst and problem is None):
        return True
    log.warning(
        "worker %s stopped on its own (%s); waiting for Redis to answer, then going on",
        worker.name,
        problem or "RQ gave up",
    )
    return False


def _wait_for_redis(components: Components) -> bool:
    """Ping Redis until it answers (True) or SIGTERM/SIGINT asks the worker to stop (False)."""
    asked: list[int] = []  # a signal handler only appends: no lock it could wait on
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda number, frame: asked.append(number))
    while not asked:
        time.sleep(defaults.REDIS_WAIT_INTERVAL)
        if asked:
            break
        try:
            components.rq_redis.ping()
        except redis_lib.RedisError:
            continue
        log.info("Redis answers again")
        return True
    return False


def run_scheduler(settings: Settings) -> None:
    """Run the scheduler until SIGTERM or SIGINT."""
    components = Components.from_settings(settings)
    _migrate(components)
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        Scheduler(components).run(stop)
    finally:
        components.close()


def _migrate(components: Components) -> None:
    """Move data of an earlier version; a failure is logged, and the process serves anyway."""
    try:
        migrate(components.redis, components.settings.losant_application_id or "")
    except redis_lib.RedisError:
        log.exception("could not move data written by an earlier version")
