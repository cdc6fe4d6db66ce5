"""Pipelines, rules and alerts end to end: gunicorn, RQ workers and the scheduler as real
processes, the sandbox with scripted notebooks, a real SMTP server and real HTTP sinks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import requests

from service import keys
from service.runtime.processes import wait_until
from tests.support.http_server import Reply, ScriptedServer
from tests.support.sandbox import LOG_OUTPUTS
from tests.support.slow_proxy import SlowProxy
from tests.support.smtp_server import SmtpSink

STACK_ENV = {"NBRELAY_ACTION_LEASE": "2"}
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"nbrelay-e2e-webhook-secret-32byte").decode()


def scripted(app, name: str, status: str = "completed", **behaviour) -> str:
    notebook_id = app.create_notebook(name, outputs=LOG_OUTPUTS)["id"]
    app.set_behaviour(notebook_id, status=status, durationSeconds=0.2, **behaviour)
    return notebook_id


def pipeline_stack(stack_factory, tmp_path, text: str, **options):
    path = tmp_path / "pipelines.yaml"
    path.write_text(textwrap.dedent(text))
    env = {**STACK_ENV, "NBRELAY_PIPELINES": str(path), **options.pop("env", {})}
    return stack_factory(env=env, **options)


def wait_for_run(stack, run_id: str, timeout: float = 40.0) -> dict:
    def ended():
        run = stack.get(f"/api/runs/{run_id}").json()
        return run if run.get("finishedAt") else None

    try:
        return wait_until(ended, timeout, f"run {run_id} to end")
    except TimeoutError as exc:
        run = stack.get(f"/api/runs/{run_id}").json()
        raise AssertionError(f"{exc}: {json.dumps(run)[:2000]}\n{stack.logs()}") from None


def contexts(app, notebook_id: str) -> list[dict]:
    """templateContext of each execution of a notebook, oldest first."""
    return [json.loads(e.get("templateContext") or "{}") for e in reversed(app.logs(notebook_id))]


def test_pipelines_run_with_retries_and_failure_policies(stack_factory, sandbox_app, tmp_path):
    ids = {name: scripted(sandbox_app, name) for name in ("A", "B", "C", "D", "E")}
    flaky = scripted(sandbox_app, "Flaky", "errored")
    broken = scripted(sandbox_app, "Broken", "timeout")
    stack = pipeline_stack(
        stack_factory,
        tmp_path,
        """\
        pipelines:
          diamond:
            params: {day: null}
            steps:
              a: {notebook: A, context: {day: "{{ params.day }}", rows: 41}}
              b:
                notebook: B
                after: a
                context: {from_a: "{{ steps.a.id }}", rows: "{{ steps.a.context.rows + 1 }}"}
              c:
                notebook: C
                after: a
                context: {log: "{{ steps.a.outputInfo['result.log'].url }}"}
              d:
                notebook: D
                after: [b, c]
                context: {b: "{{ steps.b.id }}", c: "{{ steps.c.id }}"}
          retried:
            steps:
              flaky: {notebook: Flaky, context: {x: 1}, retry: {max_attempts: 2, backoff: [3s]}}
              after: {notebook: E, after: flaky}
          failing:
            steps:
              first: {notebook: Broken, on_failure: skip}
              second: {notebook: E, after: first}
        rules:
          after-d:
            notebook: D
            statuses: completed
            actions:
              - patch: {notebook: E, set: {description: "fed by {{ execution.id }}"}}
        """,
    )
    listed = stack.get("/api/pipelines").json()
    assert [p["name"] for p in listed["items"]] == ["diamond", "retried", "failing"]

    failing = stack.post("/api/pipelines/failing/runs", json={"requestedBy": "e2e"}).json()
    bad = stack.post("/api/pipelines/diamond/runs", json={"params": {"dya": 1}})
    assert bad.status_code == 400 and bad.json()["message"] == (
        "unknown parameter 'dya' (declared: day)"
    )
    assert stack.post("/api/pipelines/nope/runs", json={}).status_code == 404
    unknown = stack.run_cli("pipelines", "start", "nope")
    assert (unknown.returncode, unknown.stderr) == (2, "nbrelay: error: no pipeline named 'nope'\n")
    missing = stack.run_cli("pipelines", "start", "diamond")
    assert (missing.returncode, missing.stderr) == (
        2,
        "nbrelay: error: parameter 'day' is required\n",
    )

    result = stack.run_cli("pipelines", "start", "diamond", "--param", "day=2024-05-01", "--wait")
    assert result.returncode == 0, result.stderr + stack.logs()
    run_id = result.stdout.splitlines()[0]
    assert result.stdout.splitlines()[1].startswith(f"run {run_id} of diamond: completed")
    progress = re.findall(rf"^\[\d+s\] run {run_id} diamond: (.+)$", result.stderr, re.M)
    assert progress[0].startswith("running · a ") and progress[-1] == (
        "completed · a completed · b completed · c completed · d completed"
    )
    run = stack.get(f"/api/runs/{run_id}").json()
    for key, step in run["steps"].items():  # each step, its execution, and that one's outputs
        (execution,) = step["executions"]
        shown = rf"^  {key}: completed \[{execution['id']} completed\]\n(    output .+\n)*"
        assert re.search(shown + r"    output result\.log: https?://\S+$", result.stdout, re.M)
    assert {key: step["state"] for key, step in run["steps"].items()} == dict.fromkeys(
        "abcd", "completed"
    )
    (a,), (b,), (c,), (d,) = (contexts(sandbox_app, ids[n]) for n in "ABCD")
    a_execution = run["steps"]["a"]["executions"][0]["id"]
    nonce = a["nbrelay"].pop("nonce")
    assert isinstance(nonce, str) and len(nonce) == 22  # the action's 16 random bytes
    shown = stack.get(f"/api/actions/run:{run_id}:a:1").json()
    assert shown["spec"]["pipeline"] == {"run": run_id, "step": "a", "attempt": 1}
    assert "nonce" not in shown["spec"]  # the API never shows it
    assert a == {
        "day": "2024-05-01",
        "rows": 41,
        "nbrelay": {"run": run_id, "step": "a", "attempt": 1},
    }
    assert b["from_a"] == a_execution and b["rows"] == 42
    assert c["log"].startswith(sandbox_app.sandbox.url) and "result.log" in c["log"]
    assert d["b"] == run["steps"]["b"]["executions"][0]["id"]
    assert run["steps"]["d"]["startedAt"] >= max(run["steps"][s]["finishedAt"] for s in "bc")
    for name in "ABCD":
        assert sandbox_app.stats(ids[name])["requests"]["execute"] == 1

    # The rule on D patched E; the patch can be seen and undone.
    d_execution = run["steps"]["d"]["executions"][0]["id"]
    (patch,) = wait_until(
        lambda: [a for a in stack.get("/api/actions?kind=patch").json()["items"] if a["outcome"]],
        20,
        "the patch",
    )
    assert patch["key"] == f"rule:after-d:0:{d_execution}:completed"
    assert patch["outcome"]["after"] == {"description": f"fed by {d_execution}"}
    before = patch["outcome"]["before"]["description"]
    assert (
        sandbox_app.sandbox.call("GET", f"/applications/{sandbox_app.id}/notebooks/{ids['E']}")[
            "description"
        ]
        == f"fed by {d_execution}"
    )
    listed = stack.run_cli("actions", "list", "--kind", "patch")
    assert listed.returncode == 0 and f"done     patch    {patch['key']}" in listed.stdout
    undone = stack.run_cli("actions", "undo", patch["key"])
    assert undone.returncode == 0 and undone.stdout.strip() == f"undo:{patch['key']}"
    wait_until(
        lambda: stack.get(f"/api/actions/undo:{patch['key']}").json()["state"] == "done",
        20,
        "the undo",
    )
    notebook = sandbox_app.sandbox.call(
        "GET", f"/applications/{sandbox_app.id}/notebooks/{ids['E']}"
    )
    assert notebook.get("description") == (before or "")  # a field it lacked is set back empty
    assert stack.post(f"/api/actions/{listed.stdout.split()[2]}/undo").status_code == 202
    assert stack.post("/api/actions/nope/undo").status_code == 404

    # The first attempt errors; the second is due 3 s later, by when Flaky will complete.
    retried = stack.post("/api/pipelines/retried/runs", json={}).json()
    wait_until(
        lambda: stack.get(f"/api/runs/{retried['id']}").json()["steps"]["flaky"]["attempt"] == 2,
        20,
        "the retry to be scheduled",
    )
    sandbox_app.set_behaviour(flaky, status="completed", durationSeconds=0.2)
    retried = wait_for_run(stack, retried["id"])
    assert retried["status"] == "completed"
    assert [(e["attempt"], e["status"]) for e in retried["steps"]["flaky"]["executions"]] == [
        (1, "errored"),
        (2, "completed"),
    ]
    first, second = contexts(sandbox_app, flaky)
    assert first["x"] == second["x"] == 1 and second["nbrelay"]["attempt"] == 2

    failing = wait_for_run(stack, failing["id"])
    assert failing["status"] == "failed"
    assert failing["steps"]["first"]["state"] == "failed"
    assert failing["steps"]["second"]["state"] == "skipped"
    assert failing["steps"]["second"]["reason"] == "upstream step first failed"
    assert "ended timeout" in failing["steps"]["first"]["reason"]
    assert sandbox_app.stats(broken)["requests"]["execute"] == 1

    shown = stack.run_cli("pipelines", "show", failing["id"])
    assert shown.returncode == 0 and "second: skipped (upstream step first failed)" in shown.stdout
    assert requests.get(f"{stack.url}/api/runs/{failing['id']}", timeout=10).status_code == 401

    # The running service reloads the file when it changes, only if it is valid.
    path = tmp_path / "pipelines.yaml"
    path.write_text(path.read_text().replace("after: flaky", "after: flakey"))
    wait_until(lambda: "is invalid; the version in force stays" in stack.logs(), 15, "rejection")
    assert "unknown step 'flakey'" in stack.logs()
    assert stack.get("/api/pipelines").json()["items"][1]["steps"][1]["after"] == ["flaky"]
    fixed = path.read_text().replace("after: flakey", "after: flaky")
    path.write_text(fixed.replace("retried:", "retried-again:"))
    wait_until(
        lambda: "retried-again" in [p["name"] for p in stack.get("/api/pipelines").json()["items"]],
        15,
        "the reload",
    )


def test_each_step_runs_once_despite_redelivery_and_a_killed_worker(
    stack_factory, sandbox_app, tmp_path
):
    a = scripted(sandbox_app, "A", dropCallbacks=1)
    others = {name: scripted(sandbox_app, name, duplicateCallbacks=1) for name in "BCD"}
    # Losant (the sandbox) behind a proxy that answers B's execute 5 s late: the execution is
    # queued at once, and the worker that asked is still waiting when it is killed.
    proxy = SlowProxy(sandbox_app.sandbox.url).start()
    proxy.hold("POST", rf"/notebooks/{others['B']}/execute", 5.0)
    try:
        stack = pipeline_stack(
            stack_factory,
            tmp_path,
            """\
            pipelines:
              diamond:
                steps:
                  a: {notebook: A}
                  b: {notebook: B, after: a, context: {a: "{{ steps.a.id }}"}}
                  c: {notebook: C, after: a, context: {a: "{{ steps.a.id }}"}}
                  d: {notebook: D, after: [b, c]}
            """,
            env={"LOSANT_API_URL": proxy.url},
        )
        run = stack.post("/api/pipelines/diamond/runs", json={}).json()
        (execution,) = wait_until(lambda: sandbox_app.logs(a), 20, "A's execution")
        sandbox_app.wait_for_status(a, execution["id"])
        url = stack.callback_url(a, run=run["id"], step="a")
        body = {"success": True, "execution": {"id": execution["id"]}}

        def callback(_: int) -> int:
            return requests.post(url, json=body, timeout=10).status_code

        with ThreadPoolExecutor(8) as pool:
            assert list(pool.map(callback, range(20))) == [202] * 20
        # The worker is inside B's execute: Losant has queued the run, nbrelay has no answer.
        wait_until(lambda: proxy.held, 20, "B's execute to reach Losant")
        stack.workers[0].kill()
        stack.start_worker()
        final = wait_for_run(stack, run["id"], timeout=60)
    finally:
        proxy.stop()
    assert final["status"] == "completed", json.dumps(final)
    assert sandbox_app.stats(a)["requests"]["execute"] == 1
    for name, notebook_id in others.items():
        assert sandbox_app.stats(notebook_id)["requests"]["execute"] == 1, name
    assert [len(final["steps"][s]["executions"]) for s in "abcd"] == [1, 1, 1, 1]
    # The action is taken over after its lease and finds B's execution in Losant's /logs.
    action = wait_until(
        lambda: (
            (a := stack.get(f"/api/actions/run:{run['id']}:b:1").json())["state"] == "done" and a
        ),
        20,
        "b's action to be recovered",
    )
    assert action["attempts"] == 2
    assert action["outcome"] == {
        "execution_id": final["steps"]["b"]["executions"][0]["id"],
        "found_in_losant": True,
    }


def test_alerts_reach_every_channel_once_and_resolve(
    stack_factory, sandbox_app, tmp_path, http_server
):
    webhook = ScriptedServer().start()
    gone = ScriptedServer(default=Reply(404, "no_service")).start()
    smtp = SmtpSink().start()
    try:
        etl = scripted(sandbox_app, "ETL", "errored")
        stack = pipeline_stack(
            stack_factory,
            tmp_path,
            f"""\
            channels:
              slack: {{kind: slack, url: "{http_server.url}/services/T1/B1/slack-secret"}}
              revoked: {{kind: slack, url: "{gone.url}/services/T1/B1/revoked-secret"}}
              hook: {{kind: webhook, url: "{webhook.url}/nbrelay", secret: "${{HOOK_SECRET}}"}}
              mail:
                kind: email
                host: 127.0.0.1
                port: {smtp.port}
                security: none
                from: nbrelay@example.com
                to: [oncall@example.com]
            alerts: {{group_wait: 3s, repeat_interval: 1h}}
            rules:
              etl-failed:
                notebook: ETL
                statuses: [errored]
                actions: [{{notify: [slack, revoked, hook, mail]}}]
            """,
            env={"HOOK_SECRET": WEBHOOK_SECRET},
        )

        def pending_notifications() -> list[str]:
            components = stack.components()
            try:
                return [
                    k
                    for k in components.redis.zrange(keys.actions_due(), 0, -1)
                    if k.startswith("notify:")
                ]
            finally:
                components.close()

        started = time.monotonic()
        first = stack.post(f"/api/notebooks/{etl}/executions", json={}).json()["executionId"]
        second = stack.post(f"/api/notebooks/{etl}/executions", json={}).json()["executionId"]
        stack.wait_for_status(first, "errored")
        stack.wait_for_status(second, "errored")
        wait_until(
            lambda: http_server.requests and webhook.requests and smtp.received and gone.requests,
            15,
            "the alert on every channel",
        )

        # One message per channel for the episode; the next one is not due before an hour.
        def settled():
            (alert,) = stack.get("/api/alerts").json()["items"]
            return alert if alert["notifications"] == 1 and not pending_notifications() else None

        alert = wait_until(settled, 15, "the notifications to be done")
        due = datetime.fromisoformat(alert["nextNotificationAt"]).timestamp()
        assert due - time.time() > 3500
        assert len(http_server.requests) == len(webhook.requests) == len(smtp.received) == 1
        assert len(gone.requests) == 1  # the 404 is permanent: not retried
        assert time.monotonic() - started < 20

        text = http_server.requests[0].json()["text"]
        assert "Notebook “ETL” errored" in text and (first in text or second in text)
        assert "2 failures in a row" in text

        hook = webhook.requests[0]
        timestamp = int(hook.headers["webhook-timestamp"])
        key = base64.b64decode(WEBHOOK_SECRET.removeprefix("whsec_"))
        signed = f"{hook.headers['webhook-id']}.{timestamp}.".encode() + hook.body
        digest = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        assert hook.headers["webhook-signature"] == f"v1,{digest}"
        assert hook.json()["data"]["execution_id"] in (first, second)

        (mail,) = smtp.received
        assert mail.message["Subject"] == "[nbrelay] Notebook “ETL” errored"
        assert hook.json()["data"]["execution_id"] in mail.text()

        alerts = stack.get("/api/alerts").json()
        (alert,) = alerts["items"]
        assert alert["state"] == "firing" and alert["failures"] == 2
        assert alert["failureClass"] == "errored" and alert["notebookId"] == etl
        (failure,) = alerts["failedDeliveries"]
        assert failure["channel"] == "revoked" and failure["attempts"] == 1
        assert failure["error"].startswith("slack: HTTP 404") and "secret" not in failure["error"]
        assert "secret" not in json.dumps(alerts)
        channels = stack.get("/api/pipelines").json()["channels"]
        assert channels["hook"] == {"kind": "webhook", "host": webhook.url.removeprefix("http://")}
        assert "secret" not in json.dumps(channels)

        sandbox_app.set_behaviour(etl, status="completed", durationSeconds=0.2)
        fixed = stack.post(f"/api/notebooks/{etl}/executions", json={}).json()["executionId"]
        stack.wait_for_status(fixed, "completed")
        wait_until(
            lambda: len(http_server.requests) == 2 and len(webhook.requests) == 2
            and len(smtp.received) == 2,
            15,
            "the resolved messages",
        )  # fmt: skip
        assert "Resolved" in http_server.requests[1].json()["text"]
        assert webhook.requests[1].json()["type"] == "notebook.alert.resolved"
        assert smtp.received[1].message["Subject"].startswith("[nbrelay] Resolved")
        assert stack.get("/api/alerts").json()["items"][0]["state"] == "resolved"
    finally:
        webhook.stop()
        gone.stop()
        smtp.stop()


def test_a_run_started_in_losant_that_errors_raises_the_rules_alert_within_a_busy_poll(
    stack_factory, sandbox_app, tmp_path, http_server
):
    """No NBRELAY_WATCH and no callback: the rule's notebook is watched because the rule names
    it. Its first poll finds a run that just ended, so it is busy and polled every second; a
    second run, started on the sandbox directly, errors and alerts within that second (plus the
    sync, the rule and the notification), long before an idle poll would come."""
    busy, idle = 1.0, 300.0
    etl = scripted(sandbox_app, "ETL", "completed")
    first = sandbox_app.execute(etl)
    sandbox_app.wait_for_status(etl, first)
    stack = pipeline_stack(
        stack_factory,
        tmp_path,
        f"""\
        channels:
          slack: {{kind: slack, url: "{http_server.url}/services/T1/B1/slack-secret"}}
        alerts: {{group_wait: 0s, repeat_interval: 1h}}
        rules:
          etl-failed:
            notebook: ETL
            statuses: errored
            actions: [{{notify: [slack]}}]
        """,
        env={"NBRELAY_POLL_BUSY_INTERVAL": str(busy), "NBRELAY_POLL_INTERVAL": str(idle)},
    )
    assert "NBRELAY_WATCH" not in stack.env
    stack.wait_for_status(first, "completed")  # found by the first poll: the notebook is busy

    sandbox_app.set_behaviour(etl, status="errored", durationSeconds=0.2)
    second = sandbox_app.execute(etl)
    sandbox_app.wait_for_status(etl, second)
    ended = time.monotonic()
    slack = 9.0  # the sync job, the rule, the notification job, a loaded machine
    wait_until(lambda: http_server.requests, busy + slack, "the rule's alert\n" + stack.logs())
    assert time.monotonic() - ended < busy + slack < idle
    (message,) = http_server.requests
    assert "Notebook “ETL” errored" in message.json()["text"] and second in message.json()["text"]
    record = stack.execution(second)
    assert record["nbrelay"]["requestedBy"] is None and record["nbrelay"]["callbacksReceived"] == 0
