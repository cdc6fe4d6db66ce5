"""gunicorn's own logs as nbrelay's log lines (JSON or human, as the web process chose); access
lines never show a callback token."""

from __future__ import annotations

import logging
from typing import Any

from gunicorn.glogging import Logger

from service.logs import formatter, redact


class NbrelayLogger(Logger):
    """gunicorn's error and access logs, formatted like every other line of the process."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.setFormatter(formatter("web"))

    def access(self, resp: Any, req: Any, environ: dict, request_time: Any) -> None:
        if not self.access_log_enabled:
            return
        path = environ.get("RAW_URI") or environ.get("PATH_INFO", "")
        status = getattr(resp, "status_code", None) or str(resp.status).split()[0]
        fields = {
            "event": "access",
            "method": environ.get("REQUEST_METHOD"),
            "path": redact(path),
            "status": int(status),
            "ms": round(request_time.total_seconds() * 1000, 1),
            "bytes": getattr(resp, "sent", None),
            "remote": environ.get("REMOTE_ADDR"),
            "userAgent": environ.get("HTTP_USER_AGENT"),
        }
        try:
            self.access_log.info(
                "%s %s %s", fields["method"], fields["path"], fields["status"], extra=fields
            )
        except Exception:  # noqa: BLE001 - a log line must never fail a request
            logging.getLogger(__name__).exception("could not write an access log line")
