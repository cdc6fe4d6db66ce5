"""What accepting a callback costs Redis: one EVALSHA, on a connection its web thread keeps."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from service.events.hints import Incoming, parse_hint
from service.runtime.embedded_redis import EmbeddedRedis
from service.web import create_app
from service.web.resources import EXTENSION
from tests.support.web import APP, NB, web_settings

THREADS = 4
HINTS_PER_THREAD = 10  # all within the notebook's burst: every one is recorded


def test_a_joined_hint_is_one_evalsha_on_a_connection_its_thread_keeps(redis, redis_server):
    """Once the notebook's sync is enqueued, each further hint is a single command, and the
    threads accepting them open one connection each however many hints they accept."""
    components = create_app(web_settings(redis_server.url)).extensions[EXTENSION]
    body = b'{"execution": {"status": "completed"}}'
    hint = Incoming("callback", APP, NB, body, "application/json", parse_hint(body))
    assert components.ingress.accept(hint).job_id is not None  # enqueues the sync
    redis.config_resetstat()
    connections_before = int(redis.info("stats")["total_connections_received"])

    def accept_hints(_: int) -> list[bool]:
        return [
            components.ingress.accept(hint).retry_after is None for _ in range(HINTS_PER_THREAD)
        ]

    with ThreadPoolExecutor(THREADS) as pool:
        recorded = [r for batch in pool.map(accept_hints, range(THREADS)) for r in batch]
    assert all(recorded)
    stats = redis.info("commandstats")
    assert stats["cmdstat_evalsha"]["calls"] == THREADS * HINTS_PER_THREAD
    opened = int(redis.info("stats")["total_connections_received"]) - connections_before
    assert opened <= THREADS
    components.close()


def test_a_thread_whose_kept_connection_died_with_redis_accepts_the_next_hint(tmp_path):
    """Found by the fault soak: after a Redis restart, the first callback on each web thread was
    answered 503, as its kept connection had died with the old server."""
    server = EmbeddedRedis(tmp_path / "redis").start()
    components = create_app(web_settings(server.url)).extensions[EXTENSION]
    try:
        body = b'{"execution": {"status": "completed"}}'
        hint = Incoming("callback", APP, NB, body, "application/json", parse_hint(body))
        components.ingress.accept(hint)
        server.kill()
        server.start()
        assert components.ingress.accept(hint).duplicate is False
    finally:
        components.close()
        server.stop()
