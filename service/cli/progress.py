"""What `nbrelay run --wait` and `nbrelay pipelines start --wait` show while they wait, on
stderr: on a terminal one line rewritten in place (the phase, each step's state, the time
elapsed), coloured unless NO_COLOR is set; elsewhere a plain line each time that changes. What
they print at the end (stdout) carries the output links."""

from __future__ import annotations

import shutil
import sys
import time
from types import TracebackType
from typing import Any, TextIO

from service import terminal
from service.events.records import ExecutionRecord
from service.followups.pipelines.runs import Run

Segment = tuple[str, str | None]  # text, style

# The phases of a run as Losant records them, in order: the last one reached is shown.
PHASES = (
    ("runQueuedAt", "queued"),
    ("runStartedAt", "started"),
    ("inputsCompletedAt", "inputs done"),
    ("notebookCompletedAt", "notebook done"),
    ("outputsCompletedAt", "outputs done"),
)


def elapsed_text(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole}s" if whole < 60 else f"{whole // 60}m{whole % 60:02d}s"


class Progress:
    """A status line: rewritten in place on a terminal, printed again when it changes
    elsewhere. Use it as a context manager so that the line is finished before anything else
    is written."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()
        self.colour = terminal.wants_colour(self.stream)
        self.started = time.monotonic()
        self._last: str | None = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.live and self._last is not None:
            self.stream.write("\n")
            self.stream.flush()

    def show(self, segments: list[Segment]) -> None:
        plain = " ".join(text for text, _ in segments)
        elapsed = elapsed_text(time.monotonic() - self.started)
        if self.live:
            width = shutil.get_terminal_size().columns - 1
            self.stream.write("\r\x1b[K" + self._fit([(elapsed, terminal.DIM), *segments], width))
            self.stream.flush()
        elif plain != self._last:
            self.stream.write(f"[{elapsed}] {plain}\n")
            self.stream.flush()
        self._last = plain

    def _fit(self, segments: list[Segment], width: int) -> str:
        """The segments, painted, cut to `width` visible characters (a wrapped line could not
        be rewritten in place)."""
        shown: list[str] = []
        used = 0
        for text, style in segments:
            gap = 1 if shown else 0
            room = width - used - gap
            if room <= 0:
                break
            if len(text) > room:
                text = text[: room - 1] + "…"
            shown.append(terminal.paint(text, style, self.colour))
            used += gap + len(text)
        return " ".join(shown)


def execution_segments(execution_id: str, record: ExecutionRecord | None) -> list[Segment]:
    """`execution <id>: <status> · <phase>`; `requested` until Losant's record is stored."""
    status = record.status if record is not None and record.status else "requested"
    losant = (record.losant if record is not None else None) or {}
    reached = [phase for field, phase in PHASES if losant.get(field)]
    segments: list[Segment] = [
        (f"execution {execution_id}:", None),
        (status, terminal.STATE_STYLES.get(status)),
    ]
    if reached:
        segments.append((f"· {reached[-1]}", terminal.DIM))
    return segments


def run_segments(run: Run) -> list[Segment]:
    """`run <id> <pipeline>: <status> · a completed · b running · ...`."""
    segments: list[Segment] = [
        (f"run {run.id} {run.pipeline}:", None),
        (run.status.value, terminal.STATE_STYLES.get(run.status.value)),
    ]
    for key, step in run.steps.items():
        state = step.state.value
        retry = f" (attempt {step.attempt})" if step.attempt > 1 else ""
        segments.append((f"· {key} {state}{retry}", terminal.STATE_STYLES.get(state)))
    return segments


def output_links(losant: dict[str, Any] | None) -> list[tuple[str, str]]:
    """(name, url) of each output file Losant published for an execution (`outputInfo`)."""
    outputs = (losant or {}).get("outputInfo") or {}
    return [
        (name, info["url"])
        for name, info in outputs.items()
        if isinstance(info, dict) and isinstance(info.get("url"), str)
    ]
