"""The components of the configured deployment, for one CLI command."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from service.config import Settings

if TYPE_CHECKING:  # imported when a command runs: it brings in the metrics
    from service.composition import Components


@contextmanager
def connect() -> Iterator[Components]:
    """Connect to the deployment's Redis (and Losant, when needed) for the command's duration."""
    from service.composition import Components

    components = Components.from_settings(Settings.from_env())
    try:
        yield components
    finally:
        components.close()
