"""The console's SVG charts: drawn to scale, escaped, and empty when there is nothing to draw."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from service.times import duration_text
from service.web.dashboard.charts import Bar, sparkline, stacked_columns, time_bars

SVG = "{http://www.w3.org/2000/svg}"


def rects(markup: str, css: str) -> list[ET.Element]:
    root = ET.fromstring(str(markup).replace("<svg ", f'<svg xmlns="{SVG[1:-1]}" ', 1))
    return [r for r in root.iter(f"{SVG}rect") if css in r.get("class", "").split()]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.42, "0.4 s"), (12.4, "12 s"), (185, "3 min 5 s"), (180, "3 min"), (7440, "2 h 4 min")],
)
def test_durations_read_as_people_write_them(seconds, text):
    assert duration_text(seconds) == text


def test_time_bars_are_drawn_to_scale_on_one_axis():
    chart = time_bars(
        [
            Bar("queued", 100.0, 110.0, "queued"),
            Bar("notebook", 110.0, 140.0, "completed"),
            Bar("outputs", None, None),
        ],
        now=200.0,
    )
    (queued,) = rects(chart, "queued")
    (notebook,) = rects(chart, "completed")
    assert float(notebook.get("width")) == pytest.approx(3 * float(queued.get("width")), rel=0.01)
    assert float(notebook.get("x")) == pytest.approx(
        float(queued.get("x")) + float(queued.get("width")), rel=0.01
    )
    assert "not started" in chart and "40 s" in chart


def test_a_bar_still_going_reaches_now_and_says_so():
    chart = time_bars([Bar("a", 0.0, 10.0, "completed"), Bar("b", 10.0, None, "running")], now=30.0)
    (going,) = rects(chart, "running")
    (done,) = rects(chart, "completed")
    assert float(going.get("width")) == pytest.approx(2 * float(done.get("width")), rel=0.01)
    assert time_bars([Bar("a", None, None)], now=1.0) == ""


def test_chart_text_is_escaped():
    chart = time_bars([Bar("<b>x</b>", 0.0, 1.0, "completed", href="/runs/<id>")], now=1.0)
    assert "<b>" not in chart and "&lt;b&gt;" in chart and "/runs/&lt;id&gt;" in chart
    columns = stacked_columns([("<h>", {"completed": 1})], ["completed"])
    assert "<h>" not in columns and "&lt;h&gt;" in columns


def test_stacked_columns_are_proportional_to_the_largest_column():
    chart = stacked_columns(
        [("10:00", {"completed": 2, "errored": 2}), ("11:00", {"completed": 1}), ("12:00", {})],
        ["completed", "errored"],
    )
    heights = [float(r.get("height")) for r in rects(chart, "completed")]
    (errored,) = rects(chart, "errored")
    assert heights[0] == pytest.approx(2 * heights[1])
    assert float(errored.get("height")) == pytest.approx(heights[0])
    assert "max 4" in chart and "12:00: none" in chart and "10:00: completed 2, errored 2" in chart


def test_a_sparkline_needs_two_values_and_spans_its_width():
    assert sparkline([3.0]) == ""
    points = re.search(r'points="([^"]+)"', sparkline([1.0, 4.0, 2.0], width=100)).group(1)
    xs = [float(p.split(",")[0]) for p in points.split()]
    assert xs == [0.0, 50.0, 100.0]
