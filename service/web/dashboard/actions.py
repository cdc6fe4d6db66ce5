"""The actions page (`/actions`)."""

from __future__ import annotations

from flask import render_template

from service.web.dashboard.blueprint import bp


@bp.get("/actions")
def actions():
    return render_template("dashboard/actions.html")
