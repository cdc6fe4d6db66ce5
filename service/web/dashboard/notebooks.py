"""The notebooks page (`/notebooks`)."""

from __future__ import annotations

from flask import render_template

from service.web.dashboard.blueprint import bp


@bp.get("/notebooks")
def notebooks():
    return render_template("dashboard/notebooks.html")
