"""End to end: gunicorn, RQ workers and the scheduler as real processes, the real sandbox."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import redis as redis_lib
import requests

from service import defaults, keys
from service.runtime.embedded_redis import EmbeddedRedis
from service.runtime.processes import wait_until
from tests.support.stack import ServiceStack

TIMESTAMPS = (
    "runQueuedAt",
    "runStartedAt",
    "inputsCompletedAt",
    "notebookCompletedAt",
    "outputsCompletedAt",
)


def scripted(app, status: str = "completed", name: str | None = None, **behaviour) -> dict:
    notebook = app.create_notebook(name)
    app.set_behaviour(notebook["id"], status=status, durationSeconds=0.2, **behaviour)
    return notebook


def logs_calls(app, notebook_id: str) -> int:
    return app.stats(notebook_id)["requests"].get("logs", 0)


def post_raw(url: str, body: bytes = b"{}") -> http.client.HTTPResponse:
    """POST to `url` with its path sent byte for byte (requests would normalise its encoding)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    connection.request("POST", parts.path, body, {"Content-Type": "application/json"})
    response = connection.getresponse()
    response.read()
    connection.close()
    return response


def without_callback_counts(record: dict) -> dict:
    """The record without what a late duplicate callback may still change."""
    volatile = ("callbacksReceived", "lastCallbackAt")
    return {**record, "nbrelay": {k: v for k, v in record["nbrelay"].items() if k not in volatile}}


def transitions_of(stack: ServiceStack, execution_id: str) -> list[dict]:
    components = stack.components()
    try:
        return [t for t in components.store.transitions(10_000) if t["execution"] == execution_id]
    finally:
        components.close()


def test_run_wait_follows_the_run_and_the_api_shows_losants_record(service_stack, stack_app):
    notebook = scripted(stack_app, name="nightly-report")
    result = service_stack.run_cli("run", "nightly-report", "--context", '{"day": "mon"}', "--wait")
    assert result.returncode == 0, result.stderr + service_stack.logs()
    execution_id = re.search(r"started execution ([0-9a-f]{24})", result.stderr + result.stdout)[1]
    assert f"execution {execution_id}: completed" in result.stdout
    # Off a terminal the progress is a plain line on stderr each time the phase changes.
    progress = re.findall(rf"^\[\d+s\] execution {execution_id}: (.+)$", result.stderr, re.M)
    assert progress[-1] == "completed · outputs done", result.stderr
    assert len(progress) == len(set(progress)) >= 2
    record = service_stack.execution(execution_id)
    assert record["status"] == "completed" and record["notebookId"] == notebook["id"]
    assert all(record["losant"].get(field) for field in TIMESTAMPS)
    assert json.loads(record["losant"]["templateContext"]) == {"day": "mon"}
    assert record["nbrelay"]["requestedBy"].startswith("cli:")
    assert record["nbrelay"]["callbacksReceived"] >= 1
    assert len(transitions_of(service_stack, execution_id)) == 1
    listed = service_stack.run_cli("executions", "--notebook", "nightly-report")
    assert listed.returncode == 0 and listed.stdout.split()[:2] == [execution_id, "completed"]
    shown = service_stack.run_cli("show", execution_id)
    assert shown.returncode == 0
    assert without_callback_counts(json.loads(shown.stdout)) == without_callback_counts(record)

    scripted(stack_app, "errored", name="broken-report")
    failed = service_stack.run_cli("run", "broken-report", "--wait")
    assert failed.returncode == 1
    assert ": errored" in failed.stdout


def test_a_dropped_callback_is_found_by_the_reconciler(service_stack, stack_app):
    notebook = scripted(stack_app, dropCallbacks=1)
    started = service_stack.post(f"/api/notebooks/{notebook['id']}/executions", json={})
    assert started.status_code == 201, started.text
    execution_id = started.json()["executionId"]
    assert started.headers["Location"].endswith(f"/api/executions/{execution_id}")
    record = service_stack.wait_for_status(execution_id, "completed", timeout=20)
    assert record["nbrelay"]["callbacksReceived"] == 0
    stats = stack_app.stats(notebook["id"])
    assert stats["callbacksDropped"] == 1 and stats["callbacksSent"] == 0


def test_fifty_identical_callbacks_make_one_transition_and_few_reads(service_stack, stack_app):
    notebook = scripted(stack_app, dropCallbacks=1)
    execution_id = stack_app.execute(notebook["id"])
    stack_app.wait_for_status(notebook["id"], execution_id)
    before = logs_calls(stack_app, notebook["id"])
    url = service_stack.callback_url(notebook["id"])
    body = {"success": True, "execution": {"id": execution_id, "status": "completed"}}
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda _: requests.post(url, json=body, timeout=30), range(50)))
    assert [a.status_code for a in answers] == [202] * 50
    record = service_stack.wait_for_status(execution_id, "completed")
    # callbacks are counted once the run is known: the first sync stores it during the burst
    assert 1 <= record["nbrelay"]["callbacksReceived"] < 50
    components = service_stack.components()
    wait_until(
        lambda: not components.syncs.status(stack_app.id, notebook["id"]).dirty_since, 10, "idle"
    )
    components.close()
    reads = logs_calls(stack_app, notebook["id"]) - before
    assert 1 <= reads <= 1 + 50 // defaults.SYNC_BATCH, reads  # one per batch of hints at most
    assert len(transitions_of(service_stack, execution_id)) == 1


def test_bad_tokens_record_nothing_and_the_body_never_decides(service_stack, stack_app):
    components = service_stack.components()
    events = components.redis.xlen(keys.events())
    forged = service_stack.callback_url("5c782b8d4f3a8e51c1db42e4").replace(
        "/callbacks/", "/callbacks/A"
    )
    expired = service_stack.callback_url("5c782b8d4f3a8e51c1db42e4", ttl=-1)
    for url in (forged, expired):
        answer = requests.post(url, json={"status": "completed"}, timeout=10)
        assert answer.status_code == 404 and answer.json()["type"] == "NotFound"
    assert components.redis.xlen(keys.events()) == events

    notebook = scripted(stack_app, "errored", dropCallbacks=1)
    execution_id = stack_app.execute(notebook["id"])
    stack_app.wait_for_status(notebook["id"], execution_id)
    lie = {"data": {"success": True, "execution": {"id": execution_id, "status": "completed"}}}
    assert (
        requests.post(service_stack.callback_url(notebook["id"]), json=lie, timeout=10).status_code
        == 202
    )
    assert service_stack.wait_for_status(execution_id, "errored")["losant"]["executionErrors"]
    assert transitions_of(service_stack, execution_id)[0]["status"] == "errored"
    components.close()


def test_oversized_bodies_are_413_and_any_other_body_is_a_hint(service_stack, stack_app):
    notebook = scripted(stack_app, dropCallbacks=1)
    execution_id = stack_app.execute(notebook["id"])  # started elsewhere: only a callback tells
    stack_app.wait_for_status(notebook["id"], execution_id)
    url = service_stack.callback_url(notebook["id"])
    too_big = requests.post(url, data=b"x" * (1024 * 1024), timeout=10)
    assert too_big.status_code == 413 and too_big.json()["type"] == "PayloadTooLarge"
    odd = requests.post(
        url, data=b"<html>done</html>", headers={"Content-Type": "text/html"}, timeout=10
    )
    assert odd.status_code == 202
    assert service_stack.wait_for_status(execution_id, "completed")["losant"]["id"] == execution_id


def test_metrics_add_up_across_processes_and_logs_keep_secrets(service_stack, stack_app):
    notebook = scripted(stack_app)
    started = service_stack.post(f"/api/notebooks/{notebook['id']}/executions", json={})
    service_stack.wait_for_status(started.json()["executionId"], "completed")
    encoded = service_stack.callback_url(notebook["id"]).replace("/callbacks/", "/%63allbacks%2F")
    assert post_raw(encoded).status == 202  # routed like /callbacks/<token>, logged redacted
    text = service_stack.metrics()
    for expected in (
        'nbrelay_callbacks_received_total{source="callback"}',
        'nbrelay_losant_requests_total{endpoint="logs",status="200"}',
        'nbrelay_losant_requests_total{endpoint="execute",status="200"}',
        "nbrelay_losant_request_duration_seconds_bucket",
        'nbrelay_syncs_total{outcome="ok"}',
        'nbrelay_queue_depth{queue="nbrelay-sync"}',
        'nbrelay_queue_oldest_age_seconds{queue="nbrelay-sync"}',
        'nbrelay_executions{status="completed"}',
        'nbrelay_terminal_transitions_total{status="completed"}',
        'nbrelay_callbacks_rejected_total{reason="signature",source="callback"}',
    ):
        assert expected in text, expected
    secrets = [
        service_stack.env[name]
        for name in (
            "NBRELAY_SECRET",
            "NBRELAY_API_TOKEN",
            "NBRELAY_INGEST_TOKEN",
            "LOSANT_API_TOKEN",
        )
    ]
    secrets.append(encoded.rpartition("%2F")[2])
    processes = [service_stack.web, *service_stack.workers, service_stack.scheduler]
    lines = [line for proc in processes for line in proc.log().splitlines() if line.strip()]
    for line in lines:
        entry = json.loads(line)
        assert {"time", "level", "message"} <= entry.keys()
        assert not any(secret in line for secret in secrets), line
        assert not re.search(r"/callbacks/(?!\[redacted\])", line), line
    assert any('"path": "/callbacks/[redacted]"' in line for line in lines)


def test_a_watched_notebook_is_recorded_without_any_callback(stack_factory, sandbox_app):
    notebook = scripted(sandbox_app, name="watched-etl")
    stack = stack_factory(env={"NBRELAY_WATCH": "watched-etl", "NBRELAY_POLL_INTERVAL": "0.5"})
    execution_id = sandbox_app.execute(notebook["id"])
    record = stack.wait_for_status(execution_id, "completed", timeout=20)
    assert record["nbrelay"]["requestedBy"] is None
    assert record["losant"]["sourceType"] in ("apiToken", "user", "flow", "device", "notebook")


def test_a_sync_killed_with_its_worker_is_redone(stack_factory, sandbox_app):
    notebook = scripted(sandbox_app, logsLatencySeconds=30)
    stack = stack_factory()
    execution_id = sandbox_app.execute(
        notebook["id"], callbackUrl=stack.callback_url(notebook["id"])
    )
    components = stack.components()
    wait_until(
        lambda: components.syncs.status(sandbox_app.id, notebook["id"]).leased,
        20,
        "the sync to begin",
    )
    (worker,) = stack.workers
    worker.kill()
    sandbox_app.set_behaviour(notebook["id"], status="completed", durationSeconds=0.2)
    stack.start_worker()
    record = stack.wait_for_status(execution_id, "completed", timeout=30)
    assert record["losant"]["outputsCompletedAt"]
    assert len(transitions_of(stack, execution_id)) == 1
    assert "restarted the sync" in stack.scheduler.log()
    components.close()


def stack_on(server: EmbeddedRedis, app, tmp_path, *, workers: int) -> ServiceStack:
    """A stack without a scheduler on a Redis of the test's own, which it may stop and kill."""
    return ServiceStack(
        server.url,
        app.sandbox.url,
        app.sandbox.token,
        app.id,
        tmp_path / "logs",
        workers=workers,
        scheduler=False,
    ).start()


def test_callbacks_acknowledged_before_a_redis_restart_are_not_lost(tmp_path, sandbox_app):
    server = EmbeddedRedis(tmp_path / "redis", appendonly=True).start()
    notebooks = [scripted(sandbox_app, dropCallbacks=1) for _ in range(5)]
    executions = []
    for notebook in notebooks:
        executions.append(sandbox_app.execute(notebook["id"]))
    for notebook, execution_id in zip(notebooks, executions, strict=True):
        sandbox_app.wait_for_status(notebook["id"], execution_id)
    stack = stack_on(server, sandbox_app, tmp_path, workers=0)
    try:
        for notebook in notebooks:
            answer = requests.post(stack.callback_url(notebook["id"]), json={}, timeout=10)
            assert answer.status_code == 202
        server.stop()
        server.start()
        stack.start_worker()
        for execution_id in executions:
            stack.wait_for_status(execution_id, "completed", timeout=20)
    finally:
        stack.stop()
        server.stop()


def test_a_worker_outlives_a_redis_outage_in_the_middle_of_a_job(tmp_path, sandbox_app):
    """Found by the fault soak: Redis killed while a worker ran a job made RQ quit the worker
    process. It now waits for Redis and works on."""
    server = EmbeddedRedis(tmp_path / "redis", appendonly=True).start()
    first = scripted(sandbox_app, dropCallbacks=1, logsLatencySeconds=2)
    second = scripted(sandbox_app, dropCallbacks=1)
    runs = {n["id"]: sandbox_app.execute(n["id"]) for n in (first, second)}
    for notebook_id, execution_id in runs.items():
        sandbox_app.wait_for_status(notebook_id, execution_id)
    stack = stack_on(server, sandbox_app, tmp_path, workers=1)
    try:
        read_before = logs_calls(sandbox_app, first["id"])  # the test's own waits read it too
        assert (
            requests.post(stack.callback_url(first["id"]), json={}, timeout=10).status_code == 202
        )
        wait_until(
            lambda: logs_calls(sandbox_app, first["id"]) > read_before, 20, "the sync's /logs read"
        )
        server.kill()  # while the worker waits for /logs
        (worker,) = stack.workers
        # The job ends while Redis is down: RQ then gives the worker up, which ended the process.
        failed = f"sync of notebook {first['id']} failed"
        wait_until(lambda: failed in worker.log(), 30, "the job to end in the outage")
        server.start()
        assert (
            requests.post(stack.callback_url(second["id"]), json={}, timeout=10).status_code == 202
        )
        stack.wait_for_status(runs[second["id"]], "completed", timeout=60)
        assert worker.alive()
    finally:
        stack.stop()
        server.stop()


def test_a_worker_asked_to_stop_while_redis_is_down_stops(tmp_path, sandbox_app):
    server = EmbeddedRedis(tmp_path / "redis", appendonly=True).start()
    stack = stack_on(server, sandbox_app, tmp_path, workers=1)
    try:
        (worker,) = stack.workers
        client = redis_lib.Redis.from_url(server.url)
        wait_until(lambda: client.scard("rq:workers"), 20, "the worker to register")
        client.close()
        server.kill()
        wait_until(lambda: "Redis" in worker.log().split("listening on", 1)[-1], 60, "a notice")
        worker.signal(signal.SIGTERM)
        assert worker.wait(30), "the worker did not stop"
    finally:
        stack.stop()
        server.stop()


def test_server_errors_are_retried_then_dead_lettered_and_replayed(stack_factory, sandbox_app):
    stack = stack_factory()
    recovering = scripted(sandbox_app, dropCallbacks=1)
    broken = scripted(sandbox_app, dropCallbacks=1)
    runs = {}
    for notebook in (recovering, broken):
        runs[notebook["id"]] = sandbox_app.execute(notebook["id"])
        sandbox_app.wait_for_status(notebook["id"], runs[notebook["id"]])
        sandbox_app.set_behaviour(notebook["id"], status="completed", serverErrors=1)
        requests.post(stack.callback_url(notebook["id"]), json={}, timeout=10)
    components = stack.components()
    wait_until(
        lambda: components.syncs.status(sandbox_app.id, recovering["id"]).last_error,
        20,
        "a failed sync",
    )
    sandbox_app.set_behaviour(recovering["id"], status="completed", serverErrors=0)
    stack.wait_for_status(runs[recovering["id"]], "completed", timeout=20)

    def dead_letters() -> str:
        listed = stack.run_cli("dead-letters", "list")
        assert listed.returncode == 0, listed.stderr
        return listed.stdout

    listing = wait_until(
        lambda: broken["id"] in dead_letters() and dead_letters(), 30, "a dead letter"
    )
    assert "Unavailable" in listing and recovering["id"] not in listing
    assert stack.execution(runs[broken["id"]]) is None
    sandbox_app.set_behaviour(broken["id"], status="completed", serverErrors=0)
    replayed = stack.run_cli("dead-letters", "replay")
    assert replayed.returncode == 0 and "replayed sync-" in replayed.stdout
    stack.wait_for_status(runs[broken["id"]], "completed", timeout=20)
    assert dead_letters() == ""
    components.close()


def test_metrics_survive_a_gunicorn_worker_restart(stack_factory):
    from tests.support.processes import descendants

    stack = stack_factory(workers=0, scheduler=False, env={"PROMETHEUS_MULTIPROC_DIR": ""})
    forged = f"{stack.url}/callbacks/not-a-token"
    for _ in range(4):
        assert requests.post(forged, json={}, timeout=10).status_code == 404
    line = 'nbrelay_callbacks_rejected_total{reason="malformed",source="callback"} 4.0'
    assert line in stack.metrics()
    workers = descendants(stack.web.pid)
    os.kill(min(workers), signal.SIGTERM)
    wait_until(lambda: len(descendants(stack.web.pid) - workers) == 1, 20, "a new gunicorn worker")
    assert line in stack.metrics()


def test_a_start_whose_answer_was_lost_is_recorded_all_the_same(stack_factory, sandbox_app):
    """Found by the fault soak: Losant applied an `execute` whose answer was lost, and the run's
    callback was dropped too; on a notebook no rule watches, nbrelay never heard of the run."""
    stack = stack_factory()
    notebook = scripted(sandbox_app, dropCallbacks=1, lostExecuteAnswers=1)
    answer = stack.post(f"/api/notebooks/{notebook['id']}/executions", json={})
    assert answer.status_code == 503, answer.text
    assert "may or may not have been applied" in answer.json()["message"]
    (execution_id,) = wait_until(
        lambda: [e["id"] for e in sandbox_app.logs(notebook["id"])], 20, "the run at Losant"
    )
    stack.wait_for_status(execution_id, "completed", timeout=30)
