"""What one callback URL or one relay sender can cost: replays of a valid callback URL are
bounded in Redis memory and throttled per notebook (429 with Retry-After) while other notebooks
go on; bodies over the limit are refused whatever their framing; an unauthenticated relay
request is refused before its body is read."""

from __future__ import annotations

import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from service import defaults, keys
from service.events import tokens
from service.events.hints import Incoming, parse_hint
from service.web import create_app
from service.web.resources import EXTENSION
from tests.support.web import APP, NB, SECRET, web_settings

OTHER_NB = "5c782b8d4f3a8e51c1db42e5"
REPLAYS = 20_000  # without the throttle, their kept bodies alone would take ~320 MB
MEMORY_BOUND = 16 * 1000 * 1000  # bytes of Redis memory REPLAYS replays may add


def used_memory(redis) -> int:
    return int(redis.info("memory")["used_memory"])


def test_replaying_one_callback_url_costs_bounded_memory_and_never_blocks_others(
    redis, redis_server
):
    """20,000 replays of one callback (through `Ingress.accept`, the code path of the route;
    the HTTP answers are checked below) add at most 16 MB to Redis, while callbacks of another
    notebook keep being accepted and recorded. The replayed notebook stays dirty: throttling
    loses no sync."""
    app = create_app(web_settings(redis_server.url))
    client = app.test_client()
    components = app.extensions[EXTENSION]
    body = b'{"execution": {"status": "completed", "log": "' + b"x" * 200_000 + b'"}}'
    replay = Incoming("callback", APP, NB, body, "application/json", parse_hint(body))
    other = tokens.sign(SECRET, APP, OTHER_NB)
    before = used_memory(redis)
    throttled = 0
    for n in range(REPLAYS):
        throttled += components.ingress.accept(replay).retry_after is not None
        if n % (REPLAYS // 20) == 0:
            response = client.post(f"/callbacks/{other}", json={"n": n})
            assert response.status_code == 202, response.get_json()
            grown = used_memory(redis) - before
            assert grown <= MEMORY_BOUND, f"{grown} bytes after {n} replays"
    grown = used_memory(redis) - before
    assert grown <= MEMORY_BOUND, grown
    assert throttled >= REPLAYS - defaults.HINT_BURST - 200
    assert redis.zscore(keys.dirty_notebooks(), keys.notebook_ref(APP, NB)) is not None
    others = [e for _, e in redis.xrange(keys.events()) if e[b"notebook"] == OTHER_NB.encode()]
    assert len(others) == 20


# over real HTTP, through gunicorn


def callback_url(stack, notebook_id: str) -> str:
    return stack.callback_url(notebook_id)


def test_a_replayed_callback_url_gets_429_with_retry_after_and_other_notebooks_202(
    service_stack,
):
    notebook, other = "5c782b8d4f3a8e51c1db4301", "5c782b8d4f3a8e51c1db4302"
    url, other_url = callback_url(service_stack, notebook), callback_url(service_stack, other)
    with requests.Session() as session, ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(
                lambda _: session.post(url, json={}, timeout=30), range(3 * defaults.HINT_BURST)
            )
        )
        statuses = [a.status_code for a in answers]
        assert statuses.count(202) >= defaults.HINT_BURST
        limited = [a for a in answers if a.status_code == 429]
        assert limited, statuses
        for answer in limited:
            assert answer.json()["type"] == "RateLimited"
            assert 1 <= int(answer.headers["Retry-After"]) <= 1 / defaults.HINT_RATE + 1
        assert session.post(other_url, json={}, timeout=30).status_code == 202
    components = service_stack.components()
    try:
        recorded = [e for _, e in components.store.events(1000) if e["notebook"] == notebook]
        assert defaults.HINT_BURST <= len(recorded) < len(answers)
    finally:
        components.close()


def chunks(total: int, size: int = 16 * 1024):
    sent = 0
    while sent < total:
        piece = min(size, total - sent)
        sent += piece
        yield b"x" * piece


@pytest.mark.parametrize("route", ["callback", "relay"])
def test_a_chunked_body_over_the_limit_is_413_not_cut_short(service_stack, route):
    notebook = "5c782b8d4f3a8e51c1db4303"
    if route == "callback":
        url, headers = callback_url(service_stack, notebook), {}
    else:
        url = service_stack.url + "/hooks/losant"
        headers = {"Authorization": f"Bearer {service_stack.env['NBRELAY_INGEST_TOKEN']}"}
    headers["Content-Type"] = "application/json"
    small = requests.post(url, data=chunks(1000), headers=headers, timeout=30)
    assert small.status_code == (202 if route == "callback" else 400), small.text
    over = requests.post(
        url, data=chunks(defaults.MAX_BODY_BYTES + 10_000), headers=headers, timeout=30
    )
    assert over.status_code == 413, over.text
    assert over.json()["type"] == "PayloadTooLarge"
    components = service_stack.components()
    try:
        kept = [e for _, e in components.store.events(1000) if e["notebook"] == notebook]
        assert all(int(e["bodyBytes"]) <= 1000 for e in kept), kept
    finally:
        components.close()


def raw_request(stack, head: str, timeout: float) -> tuple[float, bytes]:
    """Send only the request line and headers (the body never comes); how long the answer
    took and its first bytes."""
    sock = socket.create_connection(("127.0.0.1", stack.port), timeout=timeout)
    try:
        started = time.monotonic()
        sock.sendall(head.encode())
        answer = sock.recv(4096)
        return time.monotonic() - started, answer
    finally:
        sock.close()


@pytest.mark.parametrize(
    "auth",
    [
        "Authorization: Bearer wrong-token\r\n",
        "webhook-id: msg_1\r\nwebhook-timestamp: 1000\r\nwebhook-signature: v1,AAAA\r\n",
        "",
    ],
    ids=["wrong-bearer", "stale-signature", "none"],
)
@pytest.mark.parametrize("length", [100_000, 10_000_000])
def test_an_unauthenticated_relay_request_is_refused_unread(service_stack, auth, length):
    """The body is announced and never sent: the 401 comes at once, because the relay does not
    wait for a body it would refuse anyway."""
    head = (
        "POST /hooks/losant HTTP/1.1\r\nHost: nbrelay\r\nContent-Type: application/json\r\n"
        f"{auth}Content-Length: {length}\r\n\r\n"
    )
    took, answer = raw_request(service_stack, head, timeout=10)
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
    assert took < 3, took


def test_slow_unauthenticated_relay_requests_do_not_starve_healthz(service_stack):
    """As many stalled, unauthenticated relay requests as the web process has threads: each
    is answered 401 at once, and /healthz still answers."""
    head = (
        "POST /hooks/losant HTTP/1.1\r\nHost: nbrelay\r\nContent-Type: application/json\r\n"
        "Authorization: Bearer wrong-token\r\nContent-Length: 100000\r\n\r\n"
    )
    threads = 2 * defaults.WEB_THREADS
    with ThreadPoolExecutor(threads) as pool:
        answers = list(pool.map(lambda _: raw_request(service_stack, head, 10), range(threads)))
    for took, answer in answers:
        assert answer.startswith(b"HTTP/1.1 401") and took < 3, (took, answer[:100])
    assert requests.get(service_stack.url + "/healthz", timeout=10).status_code == 200
