# gunicorn configuration of the nbrelay web process.
#
# `nbrelay web` already uses these settings; this file is for running gunicorn directly:
#   PROMETHEUS_MULTIPROC_DIR=/tmp/nbrelay-metrics \
#     gunicorn -c deploy/gunicorn.conf.py --bind 0.0.0.0:8080 'service.web:create_app()'
# (create the metrics directory first, empty, and give it to no other service). With
# NBRELAY_ADMIN_BIND set, also bind it (`--bind "$NBRELAY_ADMIN_BIND"`): the app then serves the
# dashboard, the API and /metrics only there.
# WEB_CONCURRENCY sets the number of worker processes, NBRELAY_WEB_THREADS the threads of each.
from service.web.gunicorn_settings import *  # noqa: F403
