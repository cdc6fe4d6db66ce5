"""The dashboard's overview, executions list and execution page, signed in through the Flask test
client against the test's private Redis, over executions stored the way a sync stores them."""

from __future__ import annotations

import json
import re
import time

import pytest

from service import defaults
from service.events import tokens
from service.followups.alerts.state import Alerts
from service.followups.messages import FailureClass
from service.followups.pipeline_file.model import AlertSettings
from service.followups.pipelines.runs import Run, RunStore
from service.times import now_iso
from service.web import create_app
from service.web.resources import EXTENSION
from tests.support.dashboard import page, signed_in
from tests.support.web import API_TOKEN, APP, NB, SECRET, web_settings

OTHER_NB = "5c782b8d4f3a8e51c1db42e5"
HOUR = 3600


@pytest.fixture
def app(redis, redis_server):
    return create_app(web_settings(redis_server.url))


@pytest.fixture
def components(app):
    return app.extensions[EXTENSION]


@pytest.fixture
def client(app):
    return signed_in(app)


def execution_id(n: int) -> str:
    return f"{n:024x}"


def record(n: int, status: str, queued: float, notebook: str = NB, **fields) -> dict:
    return {
        "id": execution_id(n),
        "notebookId": notebook,
        "applicationId": APP,
        "status": status,
        "runQueuedAt": now_iso(queued),
        **fields,
    }


def store(components, records: list[dict], notebook: str = NB) -> None:
    """Store Losant's records of one notebook as a sync does, under its lease."""
    fence = components.syncs.begin(APP, notebook, "job", 0).fence
    components.store.upsert(APP, notebook, records, fence=fence)


def listed(html: str) -> list[str]:
    return re.findall(r'<tr data-execution="([0-9a-f]{24})">', html)


def is_live(html: str) -> bool:
    return 'class="live"' in html


# the executions list


def test_the_list_filters_by_notebook_id_or_name_status_and_queue_time(client, components):
    base = time.time() - 10 * HOUR
    store(components, [record(1, "completed", base), record(2, "errored", base + HOUR)])
    store(components, [record(3, "completed", base + 2 * HOUR, OTHER_NB)], OTHER_NB)
    components.store.remember_notebook_name(APP, NB, "Daily report")
    assert listed(page(client, "/executions")) == [
        execution_id(3),
        execution_id(2),
        execution_id(1),
    ]
    assert listed(page(client, f"/executions?notebook={NB}")) == [execution_id(2), execution_id(1)]
    by_name = page(client, "/executions?notebook=Daily+report")
    assert listed(by_name) == [execution_id(2), execution_id(1)]
    assert 'value="Daily report"' in by_name
    assert listed(page(client, "/executions?status=completed")) == [
        execution_id(3),
        execution_id(1),
    ]
    since, until = now_iso(base + HOUR - 60), now_iso(base + HOUR + 60)
    window = page(client, f"/executions?since={since}&until={until}")
    assert listed(window) == [execution_id(2)]
    assert listed(page(client, f"/executions?notebook={NB}&status=completed")) == [execution_id(1)]


def test_the_list_pages_with_the_stores_cursor_and_keeps_the_filters(client, components):
    base = time.time() - 10 * HOUR
    count = defaults.DASHBOARD_ROWS + 3
    store(components, [record(n, "completed", base + n) for n in range(1, count + 1)])
    first = page(client, "/executions?status=completed")
    assert listed(first) == [execution_id(n) for n in range(count, 3, -1)]
    assert "First page" not in first
    link = re.search(r'id="next-page" href="([^"]+)"', first)
    assert link and "status=completed" in link.group(1)
    second = page(client, link.group(1).replace("&amp;", "&"))
    assert listed(second) == [execution_id(3), execution_id(2), execution_id(1)]
    assert 'id="next-page"' not in second and "First page" in second


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("status=done", "unknown status &#39;done&#39;"),
        ("since=yesterday", "since: &#39;yesterday&#39; is neither milliseconds"),
        ("until=99999999999999999999999", "until: "),
        ("notebook=Nightly", "no notebook named &#39;Nightly&#39; is known"),
        ("cursor=!!", "the cursor is not one this service handed out"),
    ],
)
def test_a_bad_filter_value_is_explained_on_the_page(client, components, query, message):
    store(components, [record(1, "completed", time.time())])
    html = page(client, f"/executions?{query}")
    problem = re.search(r'id="filter-problem"[^>]*>(.*?)</p>', html, re.S)
    assert problem and message in problem.group(1), html
    assert listed(html) == []


def test_the_list_is_live_while_a_listed_execution_is_not_terminal(client, components):
    now = time.time()
    store(components, [record(1, "completed", now - 60), record(2, "inProgress", now)])
    assert is_live(page(client, "/executions"))
    assert not is_live(page(client, "/executions?status=completed"))


# one execution


def phase_bars(html: str) -> list[tuple[str, str, float, float]]:
    """(label, classes, x, width) of each drawn phase of the timeline, in page order."""
    timeline = re.search(r'<figure id="timeline">(.*?)</figure>', html, re.S)
    assert timeline, html
    rows = re.findall(
        r'<text class="label"[^>]*>([^<]+)</text>(?:<rect class="bar ([^"]+)" x="([\d.]+)" '
        r'y="[\d.]+" width="([\d.]+)")?',
        timeline.group(1),
    )
    return [(label, css, float(x or 0), float(w or 0)) for label, css, x, w in rows]


def test_the_timeline_draws_the_phases_in_order_and_to_scale(client, components):
    queued = time.time() - HOUR
    moments = {
        "runStartedAt": now_iso(queued + 10),
        "inputsCompletedAt": now_iso(queued + 15),
        "notebookCompletedAt": now_iso(queued + 45),
        "outputsCompletedAt": now_iso(queued + 50),
    }
    store(components, [record(1, "completed", queued, **moments)])
    html = page(client, f"/executions/{execution_id(1)}")
    bars = phase_bars(html)
    assert [label for label, *_ in bars] == ["queued", "inputs", "notebook", "outputs"]
    assert all(css == "completed" for _, css, _, _ in bars)
    widths = [w for *_, w in bars]
    assert widths == pytest.approx([widths[0] * s / 10 for s in (10, 5, 30, 5)], rel=0.01)
    starts = [x for _, _, x, _ in bars]
    assert starts == sorted(starts)
    assert not is_live(html)


def test_a_failed_execution_stops_at_its_phase_and_a_running_one_is_live(client, components):
    queued = time.time() - 120
    errored = record(
        1,
        "errored",
        queued,
        runStartedAt=now_iso(queued + 1),
        inputsCompletedAt=now_iso(queued + 2),
        lastUpdated=now_iso(queued + 30),
        executionErrors=[{"name": "KeyError", "message": "'sales' not found"}],
    )
    running = record(2, "inProgress", queued, runStartedAt=now_iso(queued + 1))
    store(components, [errored, running])
    html = page(client, f"/executions/{execution_id(1)}")
    assert [css for _, css, _, _ in phase_bars(html)][:3] == ["completed", "completed", "errored"]
    assert "not started" in html and "&#39;sales&#39; not found" in html
    assert not is_live(html)
    live = page(client, f"/executions/{execution_id(2)}")
    assert [css for _, css, _, _ in phase_bars(live)] == ["completed", "running running", "", ""]
    assert is_live(live)


def test_the_page_links_the_pipeline_run_and_step_that_started_it(client, components):
    context = json.dumps({"nbrelay": {"run": "run-7", "step": "load", "attempt": 2}})
    store(components, [record(1, "completed", time.time(), templateContext=context)])
    html = page(client, f"/executions/{execution_id(1)}")
    assert '<a id="pipeline-run" href="/runs/run-7">' in html
    assert "<code>load</code> (attempt 2)" in html


def test_the_page_names_the_rule_and_action_of_a_retry(client, components):
    context = json.dumps(
        {"nbrelay": {"action": "retry:abc", "rule": "again", "retry_of": execution_id(9)}}
    )
    store(components, [record(1, "completed", time.time(), templateContext=context)])
    html = page(client, f"/executions/{execution_id(1)}")
    assert "<code>again</code>" in html and "<code>retry:abc</code>" in html
    assert f'href="/executions/{execution_id(9)}"' in html


def test_the_page_lists_the_callbacks_that_named_it(app, client, components):
    now = time.time()
    store(components, [record(1, "completed", now - 30), record(2, "completed", now - 30)])
    callback = f"/callbacks/{tokens.sign(SECRET, APP, NB)}"
    for n, claimed in ((1, "completed"), (2, "errored"), (1, "done-again")):
        body = {"execution": {"id": execution_id(n), "status": claimed}}
        assert app.test_client().post(callback, json=body).status_code == 202
    html = page(client, f"/executions/{execution_id(1)}")
    assert re.search(r'id="callback-count">2 received, the last at \d{4}-', html)
    table = re.search(r'<table id="callbacks">(.*?)</table>', html, re.S)
    assert table
    assert re.findall(r"<td>callback</td><td>([^<]*)</td>", table.group(1)) == [
        "completed",
        "done-again",
    ]
    assert "errored" not in table.group(1)
    assert tokens.sign(SECRET, APP, NB) not in html


def test_context_inputs_and_urls_stay_hidden_until_revealed(client, components):
    context = json.dumps({"apiKey": "context-secret-value", "nbrelay": {"run": "r", "step": "s"}})
    stored = record(
        1,
        "completed",
        time.time(),
        templateContext=context,
        inputInfo={"data.csv": {"url": "https://bucket.example/in?sig=input-signature"}},
        outputInfo={"result.html": {"url": "https://bucket.example/out?sig=output-signature"}},
    )
    store(components, [stored])
    html = page(client, f"/executions/{execution_id(1)}")
    for secret in (
        "context-secret-value",
        "input-signature",
        "output-signature",
        API_TOKEN,
        SECRET,
    ):
        assert secret not in html
    assert "apiKey" in html and f"/executions/{execution_id(1)}/outputs/result.html" in html
    revealed = page(client, f"/executions/{execution_id(1)}?reveal=1")
    assert "context-secret-value" in revealed and "output-signature" in revealed


# the overview


def chart_columns(html: str) -> dict[str, str]:
    """The chart's tooltip of each hour: label -> counts text."""
    chart = re.search(r'<figure id="executions-chart">(.*?)</figure>', html, re.S)
    assert chart
    return dict(re.findall(r"<g><title>(\d\d-\d\d \d\d:00 UTC): ([^<]*)</title>", chart.group(1)))


def test_the_chart_counts_executions_per_hour_and_status(client, components):
    now = time.time()
    this_hour = now // HOUR * HOUR
    three_ago = this_hour - 3 * HOUR
    store(
        components,
        [
            record(1, "completed", this_hour + 1),
            record(2, "completed", this_hour + 2),
            record(3, "errored", this_hour + 3),
            record(4, "timeout", three_ago + 10),
            record(5, "completed", three_ago + HOUR - 1),
            record(6, "completed", this_hour - 24 * HOUR),  # a day ago: outside the chart
        ],
    )
    store(components, [record(7, "inProgress", this_hour + 4, OTHER_NB)], OTHER_NB)
    columns = chart_columns(page(client, "/"))
    assert len(columns) == defaults.DASHBOARD_CHART_HOURS

    def label(moment: float) -> str:
        return time.strftime("%m-%d %H:00 UTC", time.gmtime(moment))

    assert columns[label(this_hour)] == "inProgress 1, completed 2, errored 1"
    assert columns[label(three_ago)] == "completed 1, timeout 1"
    assert list(columns).index(label(this_hour)) == len(columns) - 1
    others = [
        text for name, text in columns.items() if name not in (label(this_hour), label(three_ago))
    ]
    assert set(others) == {"none"}


def test_the_overview_shows_what_waits_fails_and_runs(client, components, redis):
    now = time.time()
    store(components, [record(1, "completed", now - 60)])
    alerts = Alerts(components.redis, ttl=HOUR, clock=lambda: now + 1)
    alerts.failed(
        APP, NB, FailureClass.ERRORED, {"id": execution_id(1)}, [], AlertSettings(group_wait=0)
    )
    assert alerts.fire_due()
    run = Run("run-42", "nightly", {}, {}, "test", now_iso(now))
    RunStore(components.redis, ttl=HOUR).create(run)
    html = page(client, "/")
    firing = re.search(r'id="firing-alerts">.*?<a href="/alerts">(\d+)</a>', html, re.S)
    assert firing and firing.group(1) == "1"
    assert '<a href="/runs/run-42"><code>run-42</code></a>' in html
    assert re.search(r'id="dead-letter-count">.*?<a href="/dead-letters">0</a>', html, re.S)
    assert 'id="sync-backlog"' in html and execution_id(1) in html
    assert is_live(html)
