"""The load balancer in front of the soak's two web processes: a small HTTP reverse proxy that
sends each request to the next web in turn and, when that one refuses the connection (it is
being restarted), to the other.

It also keeps the ledger the audit needs of the callbacks the sandbox delivered: for each
`POST /callbacks/...`, when it was answered, with which status, and the execution it named.
"""

from __future__ import annotations

import http.client
import itertools
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from bench.chaos.served import ServedHttp

HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade"}
BACKEND_TIMEOUT = 30.0  # seconds for one web's answer


@dataclass(frozen=True)
class CallbackAnswer:
    at: float  # time.time() when the answer came back
    status: int
    execution_id: str | None


class Balancer:
    def __init__(self, port: int, backends: list[int]) -> None:
        self.port = port
        self.backends = backends
        self.callbacks: list[CallbackAnswer] = []
        self.unanswered = 0  # requests no web answered (both down): the client got 502
        self._lock = threading.Lock()
        self._turn = itertools.cycle(range(len(backends)))
        self._http = ServedHttp(port, self._handler(), "balancer")

    def start(self) -> Balancer:
        self._http.start()
        return self

    def stop(self) -> None:
        self._http.stop()

    def callback_answers(self) -> list[CallbackAnswer]:
        with self._lock:
            return list(self.callbacks)

    def _order(self) -> list[int]:
        with self._lock:
            first = next(self._turn)
        return self.backends[first:] + self.backends[:first]

    def _forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes] | None:
        for port in self._order():
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=BACKEND_TIMEOUT)
            try:
                connection.request(method, path, body=body, headers=headers)
                response = connection.getresponse()
                return response.status, response.getheaders(), response.read()
            except ConnectionRefusedError:
                continue  # this web is down: the other one
            except (OSError, http.client.HTTPException):
                return None  # sent, no answer: the client must not get it applied twice
            finally:
                connection.close()
        return None

    def _record(self, path: str, status: int, body: bytes) -> None:
        if not path.startswith("/callbacks/"):
            return
        answer = CallbackAnswer(time.time(), status, _execution_id(body))
        with self._lock:
            self.callbacks.append(answer)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        balancer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _proxy(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
                answer = balancer._forward(self.command, self.path, headers, body)
                reply_headers: list[tuple[str, str]] = []
                if answer is None:
                    with balancer._lock:
                        balancer.unanswered += 1
                    status, content = 502, b'{"type":"BadGateway"}'
                else:
                    status, reply_headers, content = answer
                balancer._record(self.path, status, body)
                self.send_response(status)
                for name, value in reply_headers:
                    if name.lower() not in HOP_HEADERS | {"content-length", "date", "server"}:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _proxy  # noqa: N815

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        return Handler


def _execution_id(body: bytes) -> str | None:
    """The execution a callback names, whichever body shape the sandbox sent."""
    try:
        payload = json.loads(body or b"null")
    except ValueError:
        return None
    while isinstance(payload, dict):
        if isinstance(payload.get("execution"), dict):
            return payload["execution"].get("id")
        if "data" in payload:
            payload = payload["data"]
            continue
        value = payload.get("id")
        return value if isinstance(value, str) else None
    return None
