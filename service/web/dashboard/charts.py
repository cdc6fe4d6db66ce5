"""Server-rendered SVG charts for the dashboard: bars on a time axis (an execution's phases, a
pipeline run's Gantt), stacked columns (executions per status per hour) and sparklines.

Each function returns markup ready to put in a page; every text in it is escaped. Colours come
from CSS classes (the stylesheet maps a status or state to a fill), so the charts follow the
page's palette.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from service.times import duration_text

LABEL_WIDTH = 150
ROW_HEIGHT = 22
AXIS_HEIGHT = 18
TOP_LABEL_HEIGHT = 14  # room above the columns for the scale's label


@dataclass(frozen=True)
class Bar:
    """One row of a time chart: `start` and `end` in seconds (end None: still going, drawn up
    to the chart's end); `css` names its colour; `href` makes the label a link."""

    label: str
    start: float | None
    end: float | None
    css: str = ""
    title: str = ""
    href: str | None = None


def time_bars(bars: Sequence[Bar], *, now: float, width: int = 720) -> Markup:
    """Rows of bars on one time axis drawn to scale, from the earliest start to the latest end
    (or `now` for a bar still going); rows without a start are listed, undrawn."""
    started = [b for b in bars if b.start is not None]
    if not started:
        return Markup("")
    origin = min(b.start for b in started if b.start is not None)
    finish = max(b.end if b.end is not None else now for b in started)
    span = max(finish - origin, 0.001)
    plot = width - LABEL_WIDTH - 10
    height = AXIS_HEIGHT + ROW_HEIGHT * len(bars)
    parts = [
        f'<svg class="chart time-bars" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img">'
    ]
    for index, bar in enumerate(bars):
        y = index * ROW_HEIGHT
        label = escape(bar.label)
        if bar.href:
            label = Markup('<a href="{}">{}</a>').format(bar.href, bar.label)
        parts.append(f'<text class="label" x="0" y="{y + 15}">{label}</text>')
        if bar.start is None:
            parts.append(f'<text class="muted" x="{LABEL_WIDTH}" y="{y + 15}">not started</text>')
            continue
        end = bar.end if bar.end is not None else now
        x = LABEL_WIDTH + plot * (bar.start - origin) / span
        w = max(plot * (end - bar.start) / span, 2)
        title = escape(bar.title or f"{bar.label}: {duration_text(max(end - bar.start, 0))}")
        running = "" if bar.end is not None else " running"
        parts.append(
            f'<rect class="bar {escape(bar.css)}{running}" x="{x:.1f}" y="{y + 3}" '
            f'width="{w:.1f}" height="{ROW_HEIGHT - 6}"><title>{title}</title></rect>'
        )
    axis_y = ROW_HEIGHT * len(bars) + 13
    parts.append(f'<text class="axis" x="{LABEL_WIDTH}" y="{axis_y}">0</text>')
    parts.append(
        f'<text class="axis" x="{width - 10}" y="{axis_y}" text-anchor="end">'
        f"{escape(duration_text(span))}</text>"
    )
    parts.append("</svg>")
    return Markup("".join(parts))


def stacked_columns(
    columns: Sequence[tuple[str, Mapping[str, int]]],
    series: Sequence[str],
    *,
    width: int = 720,
    height: int = 140,
) -> Markup:
    """One column per (label, counts by series), the series stacked in `series` order; the
    first and last labels under the axis, each column's counts in its tooltip."""
    if not columns:
        return Markup("")
    top = max(1, max(sum(counts.get(s, 0) for s in series) for _, counts in columns))
    plot_height = height - AXIS_HEIGHT - TOP_LABEL_HEIGHT
    step = width / len(columns)
    parts = [
        f'<svg class="chart columns" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img">'
    ]
    for index, (label, counts) in enumerate(columns):
        x = index * step
        y = float(TOP_LABEL_HEIGHT + plot_height)
        tip = ", ".join(f"{s} {counts[s]}" for s in series if counts.get(s))
        parts.append(f"<g><title>{escape(label)}: {escape(tip or 'none')}</title>")
        parts.append(
            f'<rect class="slot" x="{x:.1f}" y="{TOP_LABEL_HEIGHT}" width="{step:.1f}" '
            f'height="{plot_height}"/>'
        )
        for name in series:
            count = counts.get(name, 0)
            if not count:
                continue
            h = plot_height * count / top
            y -= h
            parts.append(
                f'<rect class="bar {escape(name)}" x="{x + 1:.1f}" y="{y:.1f}" '
                f'width="{max(step - 2, 1):.1f}" height="{h:.1f}"/>'
            )
        parts.append("</g>")
    parts.append(f'<text class="axis" x="0" y="{height - 4}">{escape(columns[0][0])}</text>')
    parts.append(
        f'<text class="axis" x="{width}" y="{height - 4}" text-anchor="end">'
        f"{escape(columns[-1][0])}</text>"
    )
    parts.append(f'<text class="axis" x="{width}" y="10" text-anchor="end">max {top}</text></svg>')
    return Markup("".join(parts))


def sparkline(values: Sequence[float], *, width: int = 120, height: int = 24) -> Markup:
    """A line through `values` (oldest first), scaled to its own maximum."""
    if len(values) < 2:
        return Markup("")
    top = max(max(values), 1e-9)
    step = width / (len(values) - 1)
    points = " ".join(
        f"{i * step:.1f},{height - 2 - (height - 4) * v / top:.1f}" for i, v in enumerate(values)
    )
    return Markup(
        f'<svg class="chart sparkline" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img"><polyline points="{points}"/></svg>'
    )
