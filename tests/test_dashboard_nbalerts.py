"""The notebooks and alerts pages of the dashboard: each notebook's health over its stored runs
and its minutes from the sandbox's `notebookMinuteCounts` (kept, and said to be unavailable
quickly when Losant is slow); alert episodes produced by the real alert code, with their
messages and deliveries. Views through Flask's test client on a real Redis."""

from __future__ import annotations

import re
import textwrap
import time

import pytest

from service import defaults, keys
from service.events.health import finished_at, notebook_health, percentile, run_duration
from service.events.records import ExecutionRecord
from service.web import create_app
from tests.support.dashboard import signed_in
from tests.support.followups import Harness
from tests.support.http_server import Reply, ScriptedServer
from tests.support.slow_proxy import SlowProxy
from tests.support.web import CONSOLE, UNREACHABLE

PUBLIC_URL = "http://relay.example.com"
MINUTE_COUNTS = r".*/notebookMinuteCounts"


# durations and percentiles


def test_percentile_interpolates_between_ranks():
    values = [float(v) for v in range(10, 0, -1)]  # order does not matter
    assert percentile(values, 0.5) == pytest.approx(5.5)
    assert percentile(values, 0.95) == pytest.approx(9.55)
    assert percentile(values, 0) == 1 and percentile(values, 1) == 10
    assert percentile([7.0], 0.95) == 7.0
    assert percentile([], 0.5) is None
    with pytest.raises(ValueError, match="within 0 and 1"):
        percentile(values, 95)


def test_run_duration_is_start_to_the_end_of_the_last_phase():
    run = {
        "runQueuedAt": "2026-01-01T10:00:00.000Z",
        "runStartedAt": "2026-01-01T10:00:05.000Z",
        "inputsCompletedAt": "2026-01-01T10:00:06.000Z",
        "notebookCompletedAt": "2026-01-01T10:01:05.500Z",
        "outputsCompletedAt": "2026-01-01T10:01:07.000Z",
    }
    assert run_duration(run) == 62.0  # the time queued does not count
    failed_in_inputs = {
        "runStartedAt": run["runStartedAt"],
        "inputsCompletedAt": run["inputsCompletedAt"],
    }
    assert run_duration(failed_in_inputs) == 1.0
    assert finished_at(failed_in_inputs) == run["inputsCompletedAt"]
    assert run_duration({"runQueuedAt": run["runQueuedAt"]}) is None  # canceled while queued
    assert run_duration({"outputsCompletedAt": run["outputsCompletedAt"]}) is None
    assert run_duration(None) is None and finished_at(None) is None


def record(execution_id: str, status: str, seconds: float | None) -> ExecutionRecord:
    losant: dict = {"id": execution_id, "status": status, "runQueuedAt": "2026-01-01T09:59:00Z"}
    if seconds is not None:
        losant["runStartedAt"] = "2026-01-01T10:00:00.000Z"
        losant["notebookCompletedAt"] = f"2026-01-01T10:00:{seconds:06.3f}Z"
    return ExecutionRecord(execution_id, "app", "nb", losant)


def test_notebook_health_over_runs_newest_first():
    runs = [  # newest first, as the store answers
        record("e5", "completed", 4),
        record("e4", "errored", 2),
        record("e3", "canceled", None),
        record("e2", "completed", 1),
        record("e1", "timeout", 3),
    ]
    health = notebook_health(runs)
    assert (health.runs, health.succeeded, health.success_rate) == (5, 2, 0.4)
    assert health.p50 == 2.5 and health.p95 == pytest.approx(3.85)
    assert health.durations == [3.0, 1.0, 2.0, 4.0]  # oldest first, the canceled run left out
    assert health.outcomes == [0.0, 1.0, 0.0, 0.0, 1.0]
    assert health.last_failure is not None and health.last_failure.id == "e4"
    empty = notebook_health([])
    assert empty.success_rate is None and empty.p50 is None and empty.last_failure is None


# the notebooks page


def make_console(make_components, **env: str):
    """The web app on the test's Redis and the sandbox (or another `LOSANT_API_URL`), and its
    components."""
    components = make_components(**{**CONSOLE, "NBRELAY_PUBLIC_URL": PUBLIC_URL, **env})
    return create_app(components=components), components


@pytest.fixture
def console(make_components):
    """A signed-in client of the web app on the test's Redis and the sandbox; its components."""
    app, components = make_console(make_components)
    return signed_in(app), components


def store_runs(components, sandbox_app, notebook_id: str, name: str) -> list[dict]:
    """Store the notebook's runs as Losant lists them, as a sync does; returns them."""
    records = sandbox_app.logs(notebook_id)
    fence = components.syncs.begin(sandbox_app.id, notebook_id, "job", time.time()).fence
    components.store.upsert(sandbox_app.id, notebook_id, records, fence=fence)
    components.store.remember_notebook_name(sandbox_app.id, notebook_id, name)
    return records


def run(sandbox_app, notebook_id: str, status: str) -> dict:
    sandbox_app.set_behaviour(notebook_id, status=status, durationSeconds=0.1)
    execution_id = sandbox_app.execute(notebook_id)
    return sandbox_app.wait_for_status(notebook_id, execution_id)


def row(page: str, notebook_id: str) -> str:
    match = re.search(
        rf'<tr id="notebook-[^"]*" data-notebook="{notebook_id}">(.*?)</tr>', page, re.S
    )
    assert match, f"no row for {notebook_id} in {page[:2000]}"
    return match.group(1)


def cell(html: str, name: str) -> str:
    match = re.search(rf'<td class="{name}">(.*?)</td>', html, re.S)
    assert match, f"no {name} cell in {html}"
    return " ".join(re.sub(r"<[^>]+>", " ", match.group(1)).split())


def test_notebooks_page_shows_health_and_minutes_from_losant(console, sandbox_app):
    client, components = console
    notebook_id = sandbox_app.create_notebook("Nightly ETL")["id"]
    for status in ("completed", "completed", "errored", "completed"):
        run(sandbox_app, notebook_id, status)
    records = store_runs(components, sandbox_app, notebook_id, "Nightly ETL")
    failure = next(r for r in records if r["status"] == "errored")
    durations = [run_duration(r) for r in records]

    answer = client.get("/notebooks")
    page = answer.get_data(as_text=True)
    assert answer.status_code == 200
    html = row(page, notebook_id)
    assert "Nightly ETL" in html
    assert cell(html, "runs") == "4"
    assert cell(html, "success") == "75 % (3 of 4)"
    assert cell(html, "p50") and cell(html, "p95")
    assert len(re.findall(r'<svg class="chart sparkline"', html)) == 2
    assert f'href="/executions/{failure["id"]}"' in html and "errored" in cell(html, "last-failure")
    assert all(d is not None for d in durations)
    losant_minutes = sandbox_app.sandbox.call(
        "GET", f"/applications/{sandbox_app.id}/notebooks/{notebook_id}/notebookMinuteCounts"
    )
    expected = sum(day["minutes"] for day in losant_minutes["counts"])
    assert expected >= 4  # each run counts at least a minute
    assert cell(html, "minutes") == str(expected)
    assert 'hx-trigger="every 2s"' not in page  # nothing pending: the page stays still
    assert sandbox_app.sandbox.token not in page


def test_minute_counts_are_kept_so_polling_does_not_ask_losant_again(console, sandbox_app):
    client, components = console
    notebook_id = sandbox_app.create_notebook("Hourly")["id"]
    run(sandbox_app, notebook_id, "completed")
    store_runs(components, sandbox_app, notebook_id, "Hourly")
    asked = lambda: sandbox_app.stats(notebook_id)["requests"].get("notebookMinuteCounts", 0)  # noqa: E731
    before = asked()
    for _ in range(3):
        assert (
            cell(row(client.get("/notebooks").get_data(as_text=True), notebook_id), "minutes")
            == "1"
        )
    assert asked() == before + 1
    ttl = components.redis.ttl(keys.notebook_minutes(sandbox_app.id, notebook_id))
    assert 0 < ttl <= defaults.NOTEBOOK_MINUTES_TTL


def test_slow_losant_shows_minutes_unavailable_quickly(make_components, sandbox_app):
    proxy = SlowProxy(sandbox_app.sandbox.url).start()
    proxy.hold("GET", MINUTE_COUNTS, 10.0)
    app, components = make_console(make_components, LOSANT_API_URL=proxy.url)
    try:
        client = signed_in(app)
        notebooks = [sandbox_app.create_notebook(f"nb{i}")["id"] for i in range(3)]
        for notebook_id in notebooks:
            run(sandbox_app, notebook_id, "completed")
            store_runs(components, sandbox_app, notebook_id, f"nb-{notebook_id}")
        started = time.monotonic()
        page = client.get("/notebooks").get_data(as_text=True)
        first = time.monotonic() - started
        assert first < defaults.MINUTES_CONNECT_TIMEOUT + defaults.MINUTES_READ_TIMEOUT + 1
        for notebook_id in notebooks:
            html = row(page, notebook_id)
            assert cell(html, "minutes") == "unavailable"
            assert cell(html, "success") == "100 % (1 of 1)"  # the rest of the page is there
        started = time.monotonic()
        again = client.get("/notebooks").get_data(as_text=True)
        assert time.monotonic() - started < 0.5  # Losant is not asked again for a while
        assert cell(row(again, notebooks[0]), "minutes") == "unavailable"
        assert len(proxy.held) == 1
    finally:
        proxy.stop()


def test_unreachable_losant_shows_minutes_unavailable(make_components, sandbox_app):
    app, components = make_console(make_components, LOSANT_API_URL=UNREACHABLE)
    client = signed_in(app)
    components.store.remember_notebook_name(sandbox_app.id, "65a0c0ffee0000000000b001", "Gone")
    started = time.monotonic()
    page = client.get("/notebooks").get_data(as_text=True)
    assert time.monotonic() - started < 2
    html = row(page, "65a0c0ffee0000000000b001")
    assert cell(html, "minutes") == "unavailable" and cell(html, "runs") == "0"
    assert "no runs" in cell(html, "success")


def test_notebooks_page_refreshes_itself_while_a_run_is_pending(console, sandbox_app):
    client, components = console
    components.store.record_request(
        application_id=sandbox_app.id,
        notebook_id="65a0c0ffee0000000000b002",
        execution_id="65a0c0ffee0000000000e002",
        requested_by="test",
        requested_at=time.time(),
        first_check_at=time.time() + 60,
        notebook_name="Pending",
    )
    page = client.get("/notebooks").get_data(as_text=True)
    assert 'hx-trigger="every 2s"' in page
    assert '<span class="status running">1</span>' in row(page, "65a0c0ffee0000000000b002")


def test_notebooks_page_needs_sign_in(make_components):
    app, _ = make_console(make_components)
    for path in ("/notebooks", "/alerts"):
        answer = app.test_client().get(path)
        assert answer.status_code == 303 and "/signin" in answer.headers["Location"]


# the alerts page


@pytest.fixture
def alerting(console, redis_server, sandbox_app, tmp_path, http_server):
    """A harness whose notebooks' errors alert through `slack` (delivered) and `broken` (404,
    a failure for good), next to the signed-in console on the same Redis."""
    broken = ScriptedServer(default=Reply(404, "no_service")).start()
    path = tmp_path / "pipelines.yaml"
    path.write_text(
        textwrap.dedent(
            f"""\
            channels:
              slack: {{kind: slack, url: "{http_server.url}/services/T/B/secret"}}
              broken: {{kind: slack, url: "{broken.url}/services/T/B/revoked"}}
            alerts: {{group_wait: 0s, repeat_interval: 1h}}
            rules:
              etl-failed:
                notebook: ETL
                statuses: [errored]
                actions: [{{notify: [slack, broken]}}]
              report-failed:
                notebook: Report
                statuses: [errored]
                actions: [{{notify: [slack, broken]}}]
            """
        )
    )
    harness = Harness(redis_server.url, sandbox_app, path)
    yield harness, console[0]
    harness.close()
    broken.stop()


def test_alerts_page_shows_firing_then_resolved_episodes_with_deliveries(alerting, http_server):
    h, client = alerting
    etl = h.notebook("ETL", status="errored")
    report = h.notebook("Report", status="errored")
    h.registry.refresh()
    failing = h.app.execute(etl)
    h.app.execute(report)
    h.run_until(lambda: len(h.seen) == 2 and len(http_server.requests) == 2, "both alerts")
    h.run_until(lambda: not h.queue, "the deliveries")
    h.app.set_behaviour(report, status="completed", durationSeconds=0.1)
    recovered = h.app.execute(report)
    h.run_until(lambda: len(http_server.requests) == 3 and not h.queue, "the resolved message")

    page = client.get("/alerts").get_data(as_text=True)
    firing, resolved = page.index("<h2>Firing</h2>"), page.index("<h2>Resolved</h2>")
    silences = page.index('<section id="silences">')
    etl_row = page.index(f'data-alert="{h.app.id}:{etl}:errored"')
    report_row = page.index(f'data-alert="{h.app.id}:{report}:errored"')
    assert firing < etl_row < resolved < report_row < silences
    etl_html = page[etl_row : page.index("</tr>", etl_row)]
    assert 'data-state="firing"' in etl_html
    assert '<span class="severity error">error</span>' in etl_html  # the global default
    assert f'class="cause" href="/executions/{failing}"' in etl_html
    assert f'href="/notebooks#notebook-{h.app.id}-{etl}"' in etl_html and "ETL" in etl_html
    assert re.search(r"firing → <code>slack</code>.*?status performed", etl_html, re.S)
    assert re.search(r"firing → <code>broken</code> \(slack\).*?status failed", etl_html, re.S)
    assert "HTTP 404" in etl_html
    report_html = page[report_row : page.index("</tr>", report_row)]
    assert 'data-state="resolved"' in report_html
    assert f'href="/executions/{recovered}"' in report_html
    assert re.search(r"resolved → <code>slack</code>.*?status performed", report_html, re.S)
    failed = page[page.index("Deliveries that failed for good") :]
    assert failed.count("<tr data-action=") == 3  # two firing messages and one resolved
    assert "secret" not in page and "revoked" not in page  # channel URLs stay hidden
    assert 'hx-trigger="every 2s"' in page  # an alert is firing


def test_alerts_page_without_alerts_is_still(console):
    client, _ = console
    page = client.get("/alerts").get_data(as_text=True)
    assert "No alert is firing." in page and "No resolved alerts kept." in page
    assert '<section id="silences">' in page
    assert 'hx-trigger="every 2s"' not in page
