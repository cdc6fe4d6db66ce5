"""The Losant client with Prometheus metrics: calls and latency by endpoint and status.

Endpoints are named like Losant's actions (`logs`, `execute`, `notebooks.get`...), never by
path, so ids stay out of label values.
"""

from __future__ import annotations

import re
from typing import Any

from service import metrics
from service.config import Settings
from service.losant import LosantClient

_NOTEBOOK_PATH = re.compile(
    r"^/applications/[^/]+/notebooks(?:/(?P<notebook>[^/]+)(?:/(?P<action>[^/]+))?)?$"
)


def endpoint_name(method: str, path: str) -> str:
    """Losant's action name for a request: `notebooks.get`, `get`, `patch`, `logs`, ..."""
    match = _NOTEBOOK_PATH.match(path)
    if match is None:
        return "other"
    if match["notebook"] is None:
        return f"notebooks.{method.lower()}"
    return match["action"] or method.lower()


def observe(method: str, path: str, status: int | None, seconds: float) -> None:
    endpoint = endpoint_name(method, path)
    metrics.LOSANT_REQUESTS.labels(endpoint, str(status) if status else "error").inc()
    metrics.LOSANT_LATENCY.labels(endpoint).observe(seconds)


def instrumented_client(settings: Settings, **policy: Any) -> LosantClient:
    return LosantClient.from_settings(settings, observer=observe, **policy)
