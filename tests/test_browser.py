"""The operator console in a real browser: headless Chromium (tests/support/browser.py) against
real nbrelay processes (web, workers, scheduler) and the sandbox. Each flow is what an operator
does: sign in, watch an execution, start a pipeline run and watch it end, undo the patch a rule
made, replay a dead letter. The flows take the README's screenshots on the way
(NBRELAY_SCREENSHOTS=1 writes them to docs/screenshots/).

Nothing is reloaded by the tests while a page is expected to update itself: a flag set on the
page's `window` must survive, which it would not across a navigation.
"""

from __future__ import annotations

import json
import os

import pytest
import requests

from service.runtime.processes import wait_until
from tests.support.browser import MISSING, Browser, programs
from tests.support.sandbox import LOG_OUTPUTS

# Skipped before any stack starts; on CI the `chromium` fixture fails instead.
pytestmark = pytest.mark.skipif(
    programs() is None and os.environ.get("CI") != "true", reason=MISSING
)
NOT_RELOADED = "window.nbrelayNotReloaded"
PIPELINES = """\
channels:
  audit: {kind: log, level: warning}
alerts: {group_wait: 0s}
pipelines:
  nightly:
    description: Extract the day's data, then write the report.
    params: {day: "2024-05-01"}
    steps:
      extract: {notebook: Extract, context: {day: "{{ params.day }}"}}
      report:
        notebook: Report
        after: extract
        context: {source: "{{ steps.extract.id }}"}
rules:
  report-done:
    notebook: Report
    statuses: completed
    actions:
      - patch: {notebook: Report, set: {description: "Report of {{ execution.id }}"}}
  check-failed:
    notebook: Check
    statuses: errored
    actions:
      - notify: [audit]
"""


def scripted(app, name: str, status: str = "completed", **behaviour) -> str:
    notebook_id = app.create_notebook(name, outputs=LOG_OUTPUTS)["id"]
    app.set_behaviour(notebook_id, **{"status": status, "durationSeconds": 0.5, **behaviour})
    return notebook_id


def mark_loaded(tab: Browser) -> None:
    tab.run(f"{NOT_RELOADED} = true")


def assert_not_reloaded(tab: Browser) -> None:
    assert tab.run(f"return {NOT_RELOADED} === true"), "the page was reloaded"


def click_button(tab: Browser, scope: str, label: str) -> None:
    """Click the button labelled `label` inside the element matching `scope`."""
    buttons = [b for b in tab.find_all(f"{scope} button") if b.text.strip() == label]
    assert buttons, f"no button {label!r} in {scope!r} on {tab.path}"
    buttons[0].click()


def test_sign_in_refuses_a_wrong_token_and_lands_on_the_overview(service_stack, browser):
    tab = browser(service_stack, signed_in=False)
    tab.open("/")
    tab.wait(lambda: tab.path.startswith("/signin"), "the redirect to the sign-in form")
    tab.fill_sign_in("not-the-token")
    tab.wait_for_text("p.error", "Wrong token. Sign in with the value of NBRELAY_API_TOKEN.")
    assert tab.find_all("nav.pages") == []
    tab.screenshot("signin")

    tab.fill_sign_in(service_stack.env["NBRELAY_API_TOKEN"])
    tab.wait_for("nav.pages")
    assert tab.path == "/"
    assert tab.text('nav.pages a[aria-current="page"]') == "Overview"


def test_the_overview_loads_its_stylesheet_and_htmx_without_csp_violations(service_stack, browser):
    tab = browser(service_stack)
    tab.console()  # what signing in logged
    tab.open("/")
    tab.wait(lambda: tab.run("return typeof htmx") == "object", "htmx to load")
    header = "return getComputedStyle(document.querySelector('header')).display"
    assert tab.run(header) == "flex", "console.css is not applied"
    logged = tab.console()
    assert [m for m in logged if "Content Security Policy" in m] == [], logged


def test_a_live_execution_page_updates_itself_until_the_execution_ends(
    service_stack, stack_app, browser
):
    notebook_id = scripted(stack_app, "Browser live", durationSeconds=4)
    tab = browser(service_stack)
    started = service_stack.post(f"/api/notebooks/{notebook_id}/executions", json={})
    assert started.status_code == 201, started.text
    execution_id = started.json()["executionId"]

    tab.open(f"/executions/{execution_id}")
    tab.wait_for("main.live")
    assert tab.text("h2 .status") != "completed"
    mark_loaded(tab)
    tab.wait_for_text("h2 .status", "completed", timeout=40)
    tab.wait(lambda: not tab.find_all("main.live"), "the page to stop updating itself")
    assert_not_reloaded(tab)
    assert [m for m in tab.console() if "Content Security Policy" in m] == []
    tab.screenshot("execution")


def test_a_pipeline_run_started_in_the_browser_ends_and_its_patch_is_undone(
    stack_factory, sandbox_app, tmp_path, browser
):
    ids = {name: scripted(sandbox_app, name) for name in ("Extract", "Report")}
    scripted(sandbox_app, "Check", "errored")
    path = tmp_path / "pipelines.yaml"
    path.write_text(PIPELINES)
    stack = stack_factory(env={"NBRELAY_PIPELINES": str(path), "NBRELAY_ACTION_LEASE": "2"})
    wait_until(lambda: stack.get("/api/pipelines").json()["items"], 20, "the pipeline file")
    failing = stack.post("/api/notebooks/Check/executions", json={})  # an alert to show
    assert failing.status_code == 201, failing.text

    tab = browser(stack)
    tab.open("/pipelines")
    tab.wait_for('a[href="/pipelines/nightly"]')

    tab.open("/pipelines/nightly")
    params = tab.wait_for('#start-run textarea[name="params"]')
    assert isinstance(json.loads(params.get_attribute("value") or ""), dict)
    params.clear()
    params.send_keys(json.dumps({"day": "2024-06-01"}))
    click_button(tab, "#start-run", "Start run")
    tab.accept_confirmation()
    tab.wait(lambda: tab.path.startswith("/runs/"), "the run's page")
    run_id = tab.path.split("/")[2].split("?")[0]
    assert stack.get(f"/api/runs/{run_id}").json()["params"] == {"day": "2024-06-01"}

    tab.wait_for("#run-status")
    mark_loaded(tab)
    tab.wait_for_text("#run-status", "completed", timeout=60)
    assert_not_reloaded(tab)
    states = {
        g.get_attribute("data-step"): g.get_attribute("data-state")
        for g in tab.find_all("g.step[data-step]")
    }
    assert states == {"extract": "completed", "report": "completed"}
    tab.screenshot("run")
    tab.open("/pipelines")
    tab.wait_for(f'a[href="/runs/{run_id}"]')
    tab.screenshot("pipelines")
    run = stack.get(f"/api/runs/{run_id}").json()
    tab.open("/executions")
    tab.wait_for(f'a[href="/executions/{run["steps"]["report"]["executions"][0]["id"]}"]')
    tab.screenshot("executions")
    tab.open("/")
    tab.screenshot("overview")

    (patch,) = wait_until(
        lambda: [a for a in stack.get("/api/actions?kind=patch").json()["items"] if a["outcome"]],
        20,
        "the patch",
    )
    notebook_url = f"/applications/{sandbox_app.id}/notebooks/{ids['Report']}"
    before = patch["outcome"]["before"].get("description") or ""
    assert sandbox_app.sandbox.call("GET", notebook_url).get("description") != before
    tab.open("/actions")
    row = f'tr[data-action="{patch["key"]}"]'
    tab.wait_for(row)
    tab.screenshot("actions")
    click_button(tab, row, "Undo")
    tab.accept_confirmation()
    tab.wait_for(".notice.done")
    wait_until(
        lambda: stack.get(f"/api/actions/undo:{patch['key']}").json()["state"] == "done",
        20,
        "the undo",
    )
    assert sandbox_app.sandbox.call("GET", notebook_url).get("description", "") == before

    tab.open("/notebooks")
    tab.wait_for("main h2")
    tab.screenshot("notebooks")
    wait_until(lambda: stack.get("/api/alerts").json()["items"], 20, "the alert")
    tab.open("/alerts")
    tab.wait_for("main h2")
    tab.screenshot("alerts")


def test_a_dead_letter_is_replayed_from_the_browser(stack_factory, sandbox_app, browser):
    stack = stack_factory()
    notebook_id = sandbox_app.create_notebook("Browser broken")["id"]
    sandbox_app.set_behaviour(notebook_id, status="completed", durationSeconds=0.2, dropCallbacks=1)
    execution_id = sandbox_app.execute(notebook_id)
    sandbox_app.wait_for_status(notebook_id, execution_id)
    sandbox_app.set_behaviour(notebook_id, status="completed", serverErrors=1)
    requests.post(stack.callback_url(notebook_id), json={}, timeout=10)
    components = stack.components()
    try:
        (letter,) = wait_until(components.dead_letters.all, 30, "a dead letter")
    finally:
        components.close()

    tab = browser(stack)
    tab.open("/dead-letters")
    row = f'tr[data-job="{letter.job_id}"]'
    tab.wait_for(row)
    tab.screenshot("dead-letters")
    sandbox_app.set_behaviour(notebook_id, status="completed", serverErrors=0)
    click_button(tab, row, "Replay")
    tab.accept_confirmation()
    tab.wait_for(".notice.done")
    assert tab.find_all(row) == []
    stack.wait_for_status(execution_id, "completed", timeout=30)
    tab.open("/dead-letters")
    tab.wait(lambda: "No dead letters" in (tab.text("main") or ""), "no dead letters left")


def test_pages_without_a_session_lead_to_the_sign_in_form(service_stack, browser):
    tab = browser(service_stack, signed_in=False)
    tab.open("/pipelines")
    tab.wait(lambda: tab.path.startswith("/signin"), "the sign-in form")
    tab.fill_sign_in(service_stack.env["NBRELAY_API_TOKEN"])
    tab.wait(lambda: tab.path == "/pipelines", "the page asked for")
    assert tab.text('nav.pages a[aria-current="page"]') == "Pipelines"
