"""The pipelines page (`/pipelines`)."""

from __future__ import annotations

from flask import render_template

from service.web.dashboard.blueprint import bp


@bp.get("/pipelines")
def pipelines():
    return render_template("dashboard/pipelines.html")
