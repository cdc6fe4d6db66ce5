"""The one way views reach shared resources: the app's Components."""

from __future__ import annotations

from flask import current_app

from service.composition import Components

EXTENSION = "nbrelay"


def get_components() -> Components:
    return current_app.extensions[EXTENSION]
