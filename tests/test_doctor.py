"""`nbrelay doctor` against real stacks on the sandbox: healthy, and broken one way at a time."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib
import requests

from service import keys
from service.events import tokens
from service.runtime.embedded_redis import EmbeddedRedis
from service.runtime.processes import free_port, wait_until
from service.runtime.supervisor import nbrelay_command
from tests.support.sandbox import SandboxApp
from tests.support.stack import ServiceStack

OTHER_APPLICATION = "5f" * 12


def doctor(stack: ServiceStack, *args: str, **env: str) -> subprocess.CompletedProcess:
    """`nbrelay doctor ARGS` with the stack's settings, `env` changing some."""
    return subprocess.run(
        nbrelay_command("doctor", *args),
        env={**stack.env, **env},
        cwd=stack.log_dir,
        capture_output=True,
        text=True,
        timeout=120,
    )


def report(stack: ServiceStack, **env: str) -> tuple[int, dict[str, dict[str, Any]]]:
    """Exit status and the checks of `nbrelay doctor --json`, by name."""
    done = doctor(stack, "--json", **env)
    assert done.stdout, done.stderr
    checks = json.loads(done.stdout)["checks"]
    return done.returncode, {check["name"]: check for check in checks}


def failed(checks: dict[str, dict[str, Any]]) -> set[str]:
    return {name for name, check in checks.items() if not check["ok"]}


def alive(stack: ServiceStack) -> ServiceStack:
    """Wait until the stack's workers have registered and its scheduler leads."""
    components = stack.components()
    try:
        wait_until(
            lambda: (
                len(components.queues.workers()) == len(stack.workers)
                and (not stack.scheduler or components.redis.exists(keys.scheduler_leader()))
            ),
            30,
            "the workers and the scheduler",
        )
    finally:
        components.close()
    return stack


@pytest.fixture
def healthy(tmp_path: Path, sandbox_app: SandboxApp) -> Iterator[ServiceStack]:
    """A stack as a deployment should be: Redis with its append-only file, noeviction and a
    maxmemory, one worker, a scheduler."""
    server = EmbeddedRedis(tmp_path / "redis", appendonly=True).start()
    connection = redis_lib.Redis.from_url(server.url)
    connection.config_set("maxmemory", "256mb")
    connection.close()
    sandbox = sandbox_app.sandbox
    stack = ServiceStack(server.url, sandbox.url, sandbox.token, sandbox_app.id, tmp_path / "logs")
    try:
        yield alive(stack.start())
    finally:
        stack.stop()
        server.stop()


@pytest.fixture
def broken(stack_factory: Callable[..., ServiceStack]) -> Callable[..., ServiceStack]:
    """Stacks on the suite's Redis, which keeps no append-only file."""
    return lambda **options: alive(stack_factory(**options))


def pipeline_file(directory: Path, notebook: str) -> Path:
    path = directory / "pipelines.yaml"
    path.write_text(f"pipelines:\n  p:\n    steps:\n      only: {{notebook: {notebook}}}\n")
    return path


def test_a_healthy_deployment_passes_every_check(healthy, sandbox_app, tmp_path):
    notebook = sandbox_app.create_notebook("doctor report")
    pipelines = str(pipeline_file(tmp_path, "doctor report"))

    status, checks = report(healthy, NBRELAY_PIPELINES=pipelines)

    assert status == 0, checks
    assert {name: c["level"] for name, c in checks.items() if c["level"] != "ok"} == {}
    assert set(checks) >= {
        "configuration",
        "Redis",
        "Redis persistence",
        "Redis eviction policy",
        "Redis memory",
        "Losant API",
        "Losant token",
        "Losant application",
        "Losant scope notebooks.get",
        "Losant scope notebook.get",
        "Losant scope notebook.logs",
        "Losant scope notebook.execute",
        "Losant scope notebook.patch",
        "pipeline notebooks",
        "public URL",
        "clock",
        "workers",
        "scheduler",
    }
    assert "inferred" in checks["Losant scope notebook.execute"]["detail"]
    assert "inferred" not in checks["Losant scope notebook.logs"]["detail"]
    # the scope checks ran nothing
    assert sandbox_app.logs(notebook["id"]) == []

    text = doctor(healthy, NBRELAY_PIPELINES=pipelines)
    lines = text.stdout.splitlines()
    assert text.returncode == 0
    assert all(line.startswith("✓ ") for line in lines[:-1]), text.stdout
    assert lines[-1] == "ready to go live"


def test_a_wrong_application_id_fails_with_its_fix(healthy):
    status, checks = report(healthy, LOSANT_APPLICATION_ID=OTHER_APPLICATION)

    assert status == 1
    application = checks["Losant application"]
    assert not application["ok"] and OTHER_APPLICATION in application["detail"]
    assert "LOSANT_APPLICATION_ID" in application["fix"]
    assert checks["Losant token"]["ok"]


def test_a_public_url_nobody_listens_on_fails(healthy):
    nowhere = f"http://127.0.0.1:{free_port()}"

    status, checks = report(healthy, NBRELAY_PUBLIC_URL=nowhere)

    assert status == 1
    assert failed(checks) == {"public URL"}
    assert nowhere in checks["public URL"]["detail"]
    assert "NBRELAY_PUBLIC_URL" in checks["public URL"]["fix"]


def test_a_public_url_reaching_another_secret_does_not_pass(healthy):
    """The probe must be signed with the web process's secret: one signed with another secret
    is answered like an unknown URL and never recorded."""
    status, checks = report(healthy, NBRELAY_SECRET="another-secret-0123456789")

    assert status == 1
    assert failed(checks) == {"public URL"}
    assert "HTTP 404" in checks["public URL"]["detail"]


def test_redis_without_its_append_only_file_fails(broken):
    status, checks = report(broken())

    assert status == 1
    assert failed(checks) == {"Redis persistence"}
    assert "appendonly yes" in checks["Redis persistence"]["fix"]


def test_no_worker_running_fails(broken):
    status, checks = report(broken(workers=0))

    assert "workers" in failed(checks)
    assert "nbrelay worker" in checks["workers"]["fix"]
    assert status == 1


def test_no_scheduler_running_fails(broken):
    _, checks = report(broken(scheduler=False))

    assert "scheduler" in failed(checks)


def test_a_pipeline_file_naming_a_missing_notebook_fails(broken, tmp_path):
    pipelines = str(pipeline_file(tmp_path, "no such notebook"))

    _, checks = report(broken(), NBRELAY_PIPELINES=pipelines)

    assert "pipeline notebooks" in failed(checks)
    assert "no such notebook" in checks["pipeline notebooks"]["detail"]


def test_a_token_lacking_a_scope_fails_that_scope(healthy, sandbox_app):
    sandbox = sandbox_app.sandbox
    token = f"doctor-{uuid.uuid4().hex}"
    scopes = ["notebooks.get", "notebook.get", "notebook.execute", "notebook.patch"]
    created = requests.post(
        f"{sandbox.url}/_sandbox/tokens",
        json={"token": token, "scopes": scopes},
        headers={"Authorization": f"Bearer {sandbox.token}"},
        timeout=10,
    )
    if created.status_code in (404, 405):
        pytest.skip("this sandbox has no /_sandbox/tokens route (token scopes)")
    assert created.ok, created.text
    sandbox_app.create_notebook("doctor scopes")

    status, checks = report(healthy, LOSANT_API_TOKEN=token)

    assert status == 1
    assert failed(checks) == {"Losant scope notebook.logs"}
    assert "notebook.logs" in checks["Losant scope notebook.logs"]["fix"]


def test_missing_settings_fail_the_configuration_check(healthy):
    env = {**healthy.env, "NBRELAY_PUBLIC_URL": "", "NBRELAY_API_TOKEN": ""}
    done = subprocess.run(
        nbrelay_command("doctor"),
        env=env,
        cwd=healthy.log_dir,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 1
    assert "✗ configuration: not set: NBRELAY_PUBLIC_URL, NBRELAY_API_TOKEN — fix:" in done.stdout


def test_a_malformed_setting_is_a_usage_error(healthy):
    done = doctor(healthy, LOSANT_APPLICATION_ID="not-an-id")

    assert done.returncode == 2
    assert done.stderr.startswith("nbrelay: error: LOSANT_APPLICATION_ID:")


def test_a_probe_token_is_no_callback_token_and_the_reverse():
    secret = "s" * 32
    nonce = uuid.uuid4().hex
    claims = tokens.verify(tokens.sign_probe(secret, nonce, ttl=60, now=1_000), [secret], now=1_059)
    assert claims == tokens.ProbeClaims(nonce, 1_060)
    with pytest.raises(tokens.InvalidToken, match="expired"):
        tokens.verify(tokens.sign_probe(secret, nonce, ttl=60, now=1_000), [secret], now=1_060)
    with pytest.raises(tokens.InvalidToken, match="signature"):
        tokens.verify(tokens.sign_probe(secret, nonce), ["t" * 32])
    callback = tokens.verify(tokens.sign(secret, "a" * 24, "b" * 24), [secret])
    assert isinstance(callback, tokens.CallbackClaims)
