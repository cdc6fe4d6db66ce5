"""`SandboxServer`: the sandbox as one process, a threaded WSGI server plus the run loop thread.

Used by `nbrelay sandbox` (which serves in the foreground until SIGTERM or Ctrl-C) and by Python
code that wants a sandbox in the background (`start()` / `stop()`, or a `with` block).
"""

from __future__ import annotations

import secrets
import socket
import threading
from pathlib import Path

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from sandbox import defaults, scopes
from sandbox.app import create_app
from sandbox.errors import ListenError
from sandbox.guesses import Guesses
from sandbox.services import SandboxSettings, Services


class _QuietHandler(WSGIRequestHandler):
    """No line per request: load tests make thousands a minute."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


def _listen(host: str, port: int) -> socket.socket:
    """Bind here rather than in werkzeug, which exits the process when the port is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(128)
    except OSError as exc:
        listener.close()
        raise ListenError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return listener


class SandboxServer:
    def __init__(
        self,
        data_dir: Path,
        *,
        host: str = defaults.HOST,
        port: int = defaults.PORT,
        tokens: dict[str, frozenset[str]] | None = None,
        parallel_runs: int = defaults.PARALLEL_RUNS,
        public_url: str | None = None,
        guesses: Guesses | None = None,
    ) -> None:
        """`tokens`: each API token with its scopes (sandbox.scopes); without any, one token
        with `all.Application` is generated (`token`). `guesses`: what the sandbox does where
        Losant documents nothing (sandbox.guesses; default: each guess's default)."""
        self.token_generated = not tokens
        self.token = secrets.token_urlsafe(24) if not tokens else next(iter(tokens))
        tokens = tokens or {self.token: frozenset({scopes.FULL_ACCESS})}
        listener = _listen(host, port)
        self.port = listener.getsockname()[1]
        connect_host = "127.0.0.1" if host in ("0.0.0.0", "") else host
        self.url = f"http://{connect_host}:{self.port}"
        settings = SandboxSettings(
            # Absolute, so runner processes and download paths do not depend on the cwd.
            data_dir=Path(data_dir).resolve(),
            tokens=tokens,
            base_url=(public_url or self.url).rstrip("/"),
            parallel_runs=parallel_runs,
            json_body_limit=defaults.JSON_BODY_LIMIT,
            upload_limit=defaults.UPLOAD_LIMIT,
            callback_workers=defaults.CALLBACK_WORKERS,
            callback_timeout=defaults.CALLBACK_TIMEOUT,
            guesses=guesses or Guesses(),
            poll_interval=defaults.POLL_INTERVAL,
            stop_timeout=defaults.STOP_TIMEOUT,
        )
        self.services = Services(settings)
        with listener:
            self._http: BaseWSGIServer = make_server(
                host,
                self.port,
                create_app(self.services),
                threaded=True,
                request_handler=_QuietHandler,
                fd=listener.fileno(),
            )
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"SandboxServer(url={self.url})"

    def serve_forever(self) -> None:
        """Serve in this thread until interrupted (KeyboardInterrupt, SystemExit), then stop."""
        self.services.start()
        try:
            self._http.serve_forever()
        finally:
            self._http.server_close()
            self.services.stop()

    def start(self) -> SandboxServer:
        """Serve on a background thread."""
        self.services.start()
        self._thread = threading.Thread(target=self._http.serve_forever, name="sandbox-http")
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._http.shutdown()
            self._thread.join()
            self._thread = None
        self._http.server_close()
        self.services.stop()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
