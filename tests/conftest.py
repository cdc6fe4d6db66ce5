"""Shared fixtures: a private Redis server, a clean database per test, the sandbox, nbrelay's
components and processes, scripted HTTP servers."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib

from service.composition import Components
from service.runtime.embedded_redis import EmbeddedRedis
from tests.support import browser as browsers
from tests.support.clock import ManualClock
from tests.support.followups import Harness
from tests.support.http_server import ScriptedServer
from tests.support.sandbox import SandboxApp, SandboxProcess
from tests.support.stack import ServiceStack
from tests.support.web import settings_for


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    """A redis-server of the suite's own, on a free port, with its data in a temp directory."""
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"), appendonly=False).start()
    yield server
    server.stop()


@pytest.fixture
def redis(redis_server: EmbeddedRedis) -> Iterator[redis_lib.Redis]:
    """A connection to a database emptied before the test."""
    client = redis_lib.Redis.from_url(redis_server.url)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
def text_redis(redis: redis_lib.Redis, redis_server: EmbeddedRedis) -> Iterator[redis_lib.Redis]:
    """A connection to the test's emptied database that decodes replies, as nbrelay's own
    connections do (`redis` gives bytes, as RQ's connection does)."""
    connection = redis_lib.Redis.from_url(redis_server.url, decode_responses=True)
    yield connection
    connection.close()


@pytest.fixture
def clock() -> ManualClock:
    """A clock for the parts that take one (`clock=`), moved by the test."""
    return ManualClock()


@pytest.fixture
def http_server() -> Iterator[ScriptedServer]:
    """A real HTTP server on a free port with scripted replies and a record of requests."""
    server = ScriptedServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxProcess]:
    """A `nbrelay sandbox` process of the suite's own (free port, temp data, known token).
    Up to 8 runs per application are in progress at once; more stay queued."""
    process = SandboxProcess(
        tmp_path_factory.mktemp("sandbox") / "data", options=["--parallel", "8"]
    ).start()
    yield process
    process.stop()


@pytest.fixture
def sandbox_app(sandbox: SandboxProcess, request: pytest.FixtureRequest) -> SandboxApp:
    """A fresh application in the sandbox: its id (a str) with the sandbox helpers bound."""
    return SandboxApp(sandbox.create_application(request.node.name[:200]), sandbox)


@pytest.fixture
def sandbox_guesses(sandbox: SandboxProcess) -> Iterator[Callable[..., dict]]:
    """Switches the shared sandbox's guesses (`sandbox.guesses`: logsSince, logsLimitCap,
    callbackBody, templateSyntax, outputInfo, maxRunMinutes, ...) for one test; they are put back
    after it."""
    before = sandbox.client.guesses()
    yield sandbox.client.set_guesses
    sandbox.client.set_guesses(**before)


@pytest.fixture
def make_components(
    redis: redis_lib.Redis, redis_server: EmbeddedRedis, sandbox_app: SandboxApp
) -> Iterator[Callable[..., Components]]:
    """Builds nbrelay's components in this process, as a worker builds them, on the test's
    private (emptied) Redis and `sandbox_app`; keyword arguments are further settings
    (`NBRELAY_SYNC_LEASE="5"`; `**CONSOLE` from tests.support.web for the web's, or another
    `LOSANT_API_URL`). Closed after the test."""
    built: list[Components] = []

    def build(**env: str) -> Components:
        losant = {
            "LOSANT_API_URL": sandbox_app.sandbox.url,
            "LOSANT_API_TOKEN": sandbox_app.sandbox.token,
            "LOSANT_APPLICATION_ID": sandbox_app.id,
        }
        settings = settings_for(redis_server.url, **{**losant, **env})
        built.append(Components.from_settings(settings))
        return built[-1]

    yield build
    for components in built:
        components.close()


@pytest.fixture(scope="session")
def service_stack(
    tmp_path_factory: pytest.TempPathFactory, sandbox: SandboxProcess
) -> Iterator[ServiceStack]:
    """nbrelay web (gunicorn, 2 workers) + 1 worker + scheduler as real processes, shared by
    the session, on a Redis of their own and an application of their own in the sandbox.
    Tests that change settings, kill processes or leave dead letters build their own stack
    with `stack_factory`."""
    base = tmp_path_factory.mktemp("stack")
    server = EmbeddedRedis(base / "redis", appendonly=False).start()
    application_id = sandbox.create_application("service-stack")
    stack = ServiceStack(
        server.url, sandbox.url, sandbox.token, application_id, base / "logs"
    ).start()
    yield stack
    stack.stop()
    server.stop()


@pytest.fixture
def stack_app(service_stack: ServiceStack, sandbox: SandboxProcess) -> SandboxApp:
    """The shared stack's sandbox application (create a notebook of your own in it)."""
    return SandboxApp(service_stack.application_id, sandbox)


@pytest.fixture
def stack_factory(
    tmp_path: Path, sandbox_app: SandboxApp, redis_server: EmbeddedRedis, redis: redis_lib.Redis
) -> Iterator[Callable[..., ServiceStack]]:
    """Builds stacks on the test's private (emptied) Redis and `sandbox_app`; stops them after
    the test. Keyword arguments go to ServiceStack (workers, scheduler, env)."""
    stacks: list[ServiceStack] = []

    def build(**options: Any) -> ServiceStack:
        stack = ServiceStack(
            redis_server.url,
            sandbox_app.sandbox.url,
            sandbox_app.sandbox.token,
            sandbox_app.id,
            tmp_path / f"stack-{len(stacks)}",
            **options,
        )
        stacks.append(stack)
        return stack.start()

    yield build
    for stack in stacks:
        stack.stop()


@pytest.fixture
def chromium() -> Iterator[browsers.Chrome]:
    """A headless Chromium (Selenium, Debian's chromedriver) for the test. Without Chromium the
    test is skipped, saying so in the summary; on CI (CI=true) that is a failure instead."""
    found = browsers.programs()
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail(browsers.MISSING)
        pytest.skip(browsers.MISSING)
    driver = browsers.start_chromium(*found)
    yield driver
    driver.quit()


@pytest.fixture
def browser(chromium: browsers.Chrome, tmp_path: Path) -> Callable[..., browsers.Browser]:
    """Points the test's Chromium at a stack's web: `browser(stack)` signs in with the stack's
    API token first, `browser(stack, signed_in=False)` does not."""

    def open_on(stack: ServiceStack, *, signed_in: bool = True) -> browsers.Browser:
        tab = browsers.Browser(chromium, stack.url, tmp_path / "screenshots")
        return tab.signed_in(stack.env["NBRELAY_API_TOKEN"]) if signed_in else tab

    return open_on


@pytest.fixture
def harness(
    redis: redis_lib.Redis, redis_server: EmbeddedRedis, sandbox_app: SandboxApp, tmp_path: Path
) -> Iterator[Callable[..., Harness]]:
    """Builds follow-ups in this process (`tests/support/followups.py`) from a pipeline file
    given as text (dedented), on the test's Redis and `sandbox_app`; keyword arguments go to
    `Harness` (`clock=`). Closed after the test."""
    created: list[Harness] = []

    def make(text: str, **options: Any) -> Harness:
        path = tmp_path / "pipelines.yaml"
        path.write_text(textwrap.dedent(text))
        created.append(Harness(redis_server.url, sandbox_app, path, **options))
        return created[-1]

    yield make
    for built in created:
        built.close()
