"""The follow-ups of the configured deployment, for one CLI command."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from service.config import Settings

if TYPE_CHECKING:  # imported by the commands that need it: it brings in the metrics
    from service.pipelines.followups import Followups


@contextmanager
def followups() -> Iterator[Followups]:
    """Connect to the deployment's Redis (and Losant, when needed) for the command's duration."""
    from service.context import Context

    ctx = Context.from_settings(Settings.from_env())
    try:
        yield ctx.followups
    finally:
        ctx.close()
