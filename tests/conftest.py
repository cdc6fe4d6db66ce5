"""Shared fixtures: a private Redis server, a clean database per test, scripted HTTP servers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis as redis_lib

from service.embedded_redis import EmbeddedRedis
from tests.support.http_server import ScriptedServer
from tests.support.sandbox import SandboxApp, SandboxProcess


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
