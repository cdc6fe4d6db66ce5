"""gunicorn settings of the web process (`nbrelay web` loads this module; so does
`deploy/gunicorn.conf.py` for those who run gunicorn themselves).

Environment: WEB_CONCURRENCY (worker processes), NBRELAY_WEB_THREADS (threads per worker).
`PROMETHEUS_MULTIPROC_DIR` must name a writable directory shared by the workers (`nbrelay web`
makes one when it is not set).
"""

from __future__ import annotations

import os

from service import defaults

workers = int(os.environ.get("WEB_CONCURRENCY", defaults.WEB_WORKERS))
threads = int(os.environ.get("NBRELAY_WEB_THREADS", defaults.WEB_THREADS))
worker_class = "gthread"
timeout = defaults.WEB_TIMEOUT
graceful_timeout = defaults.WEB_GRACEFUL_TIMEOUT
keepalive = 5
# Requests larger than this never reach the app (the app's own limit answers 413 below it).
limit_request_field_size = 8190
accesslog = "-"
errorlog = "-"
logger_class = "service.web.gunicorn_logging.NbrelayLogger"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# gunicorn's control socket lives at one path per user: several nbrelay web processes on one
# host would fight over it, and nbrelay does not use it.
control_socket_disable = True


def child_exit(server, worker) -> None:  # noqa: ANN001 - gunicorn's hook signature
    """Let prometheus_client drop a dead worker's live gauges."""
    from service.metrics import mark_process_dead

    mark_process_dead(worker.pid)
