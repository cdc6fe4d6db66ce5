"""The dead letters page (`/dead-letters`)."""

from __future__ import annotations

from flask import render_template

from service.web.dashboard.blueprint import bp


@bp.get("/dead-letters")
def dead_letters():
    return render_template("dashboard/dead_letters.html")
