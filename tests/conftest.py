"""Shared fixtures: a private Redis server, a clean database per test, scripted HTTP servers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis as redis_lib

from service.embedded_redis import EmbeddedRedis
from tests.support.http_server import ScriptedServer


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
