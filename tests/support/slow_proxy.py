"""A real HTTP proxy in front of another server that spoils the answers to chosen requests:
the request reaches the server at once, but its answer comes late, or is replaced by an error.
Put in front of the sandbox, it keeps a worker inside an `execute` call long enough to kill it
there, or makes an `execute` that did queue a run look failed."""

from __future__ import annotations

import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


class SlowProxy:
    def __init__(self, target: str) -> None:
        self.target = target.rstrip("/")
        self.delays: list[tuple[str, re.Pattern[str], float]] = []
        self.failures: list[tuple[str, re.Pattern[str], int]] = []
        self.held: list[str] = []  # "METHOD path" of every answer held back or replaced
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def hold(self, method: str, path_pattern: str, seconds: float) -> None:
        """Answer requests matching `method` and `path_pattern` (a regex) `seconds` late."""
        self.delays.append((method, re.compile(path_pattern), seconds))

    def fail_once(self, method: str, path_pattern: str, status: int) -> None:
        """Answer the next request matching `method` and `path_pattern` with `status` (after
        the server has handled it)."""
        self.failures.append((method, re.compile(path_pattern), status))

    def start(self) -> SlowProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
                answer = requests.request(
                    self.command, proxy.target + self.path, headers=headers, data=body, timeout=60
                )
                status, content = answer.status_code, answer.content
                for method, pattern, seconds in proxy.delays:
                    if method == self.command and pattern.search(self.path):
                        proxy.held.append(f"{self.command} {self.path}")
                        time.sleep(seconds)
                for failure in list(proxy.failures):
                    if failure[0] == self.command and failure[1].search(self.path):
                        proxy.failures.remove(failure)
                        proxy.held.append(f"{self.command} {self.path}")
                        status, content = failure[2], b'{"type": "Error", "message": "proxy"}'
                try:
                    self.send_response(status)
                    for name, value in answer.headers.items():
                        if name.lower() not in HOP_HEADERS and name.lower() != "content-encoding":
                            self.send_header(name, value)
                    self.send_header("Content-Length", str(len(content)))
                    self.end_headers()
                    self.wfile.write(content)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _forward

        return Handler
