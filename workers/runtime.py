"""The long-running processes behind `nbrelay worker` and `nbrelay scheduler`.

Workers are RQ `SimpleWorker`s: jobs run in the worker process itself, so the Losant client and
its connection pool are reused from job to job instead of being rebuilt in a fork for every
job. Each worker also runs RQ's scheduler (one of them holds its lock at a time), which moves
retried jobs back to their queue when their backoff is over. SIGTERM or Ctrl-C lets the current
job finish before the worker exits.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Sequence
from types import FrameType

from rq import SimpleWorker

from service import context, jobs
from service.config import Settings
from service.context import Context
from workers.reconcile import Scheduler

log = logging.getLogger(__name__)


def run_worker(
    settings: Settings, queues: Sequence[str] = jobs.QUEUES, *, burst: bool = False
) -> None:
    ctx = Context.from_settings(settings)
    context.install(ctx)
    worker = SimpleWorker([jobs.queue(ctx, name) for name in queues], connection=ctx.rq_redis)
    log.info("worker %s listening on %s", worker.name, ", ".join(queues))
    try:
        worker.work(burst=burst, with_scheduler=True, logging_level="INFO")
    finally:
        ctx.close()


def run_scheduler(settings: Settings) -> None:
    """Run the reconciler until SIGTERM or SIGINT."""
    ctx = Context.from_settings(settings)
    context.install(ctx)
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        Scheduler(ctx).run(stop)
    finally:
        ctx.close()
