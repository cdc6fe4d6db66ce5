"""Colour on a terminal: whether a stream gets it, and the few styles nbrelay's log lines and
progress lines use (states share their colours with the dashboard's: done green, failed red,
running blue, waiting grey)."""

from __future__ import annotations

import os
from typing import TextIO

RESET = "\x1b[0m"
DIM = "\x1b[2m"
BOLD = "\x1b[1m"
RED = "\x1b[31m"
GREEN = "\x1b[32m"
YELLOW = "\x1b[33m"
BLUE = "\x1b[34m"
MAGENTA = "\x1b[35m"
CYAN = "\x1b[36m"

# Execution statuses and pipeline step states and run statuses, by the colour they are shown in.
STATE_STYLES = {
    "completed": GREEN,
    "errored": RED,
    "timeout": RED,
    "canceled": RED,
    "failed": RED,
    "inProgress": BLUE,
    "canceling": YELLOW,
    "running": BLUE,
    "queued": DIM,
    "pending": DIM,
    "skipped": DIM,
}


def wants_colour(stream: TextIO) -> bool:
    """Colour only on a terminal, and not when NO_COLOR is set (https://no-color.org)."""
    return stream.isatty() and not os.environ.get("NO_COLOR")


def paint(text: str, style: str | None, enabled: bool) -> str:
    """`text` in `style` when colour is `enabled`."""
    return f"{style}{text}{RESET}" if enabled and style else text
