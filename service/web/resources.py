"""The one way views reach shared resources: the app's Context."""

from __future__ import annotations

from flask import current_app

from service.context import Context


def get_context() -> Context:
    return current_app.extensions["nbrelay"]
