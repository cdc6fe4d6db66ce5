"""Liveness and readiness, open to anyone; Prometheus metrics, behind `require_metrics_token`."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify
from prometheus_client import CONTENT_TYPE_LATEST

from service import metrics
from service.web.auth import require_metrics_token
from service.web.errors import error_response
from service.web.resources import get_components

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz():
    """The process answers."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():
    """The process can do its work: Redis answers."""
    try:
        get_components().redis.ping()
    except Exception:  # noqa: BLE001 - any failure to reach Redis means "not ready"
        return error_response(503, "Redis is unreachable")
    return jsonify({"status": "ready"})


@bp.get("/metrics")
def prometheus_metrics():
    require_metrics_token()
    return Response(metrics.exposition(get_components().gauges), content_type=CONTENT_TYPE_LATEST)
