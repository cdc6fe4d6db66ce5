"""The alerts page (`/alerts`)."""

from __future__ import annotations

from flask import render_template

from service.web.dashboard.blueprint import bp


@bp.get("/alerts")
def alerts():
    return render_template("dashboard/alerts.html")
