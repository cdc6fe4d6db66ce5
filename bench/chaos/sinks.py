"""Where the soak's alerts go: a webhook receiver (HTTP) and a mail server (SMTP, aiosmtpd), both
on this machine. Each keeps every message it accepted with its id (the `webhook-id` header, the
Message-ID), and either can be told to fail for a while, as a receiver that is briefly down
would: the webhook answers 503, the mail server 451 (both transient for nbrelay). A message is
counted only when it was accepted.
"""

from __future__ import annotations

import email
import email.policy
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from aiosmtpd.controller import Controller

from bench.chaos.served import ServedHttp


@dataclass(frozen=True)
class Received:
    message_id: str  # nbrelay's message id: the same on every attempt of one message
    at: float


class _Failing:
    """The switch of a sink that fails on purpose, and how many attempts it refused."""

    def __init__(self) -> None:
        self.failing = False
        self.refused = 0
        self.received: list[Received] = []
        self.lock = threading.Lock()

    def accept(self, message: Received) -> bool:
        with self.lock:
            if self.failing:
                self.refused += 1
                return False
            self.received.append(message)
            return True

    def messages(self) -> list[Received]:
        with self.lock:
            return list(self.received)


class WebhookSink(_Failing):
    def __init__(self, port: int) -> None:
        super().__init__()
        self.port = port
        self._http = ServedHttp(port, self._handler(), "webhook-sink")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> WebhookSink:
        self._http.start()
        return self

    def stop(self) -> None:
        self._http.stop()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's hook
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                message = Received(self.headers.get("webhook-id", ""), time.time())
                self.send_response(204 if sink.accept(message) else 503)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        return Handler


class MailSink(_Failing):
    def __init__(self, port: int) -> None:
        super().__init__()
        self.port = port
        self._controller = Controller(self, hostname="127.0.0.1", port=port)

    def start(self) -> MailSink:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        mail = email.message_from_bytes(envelope.content, policy=email.policy.default)
        message_id = str(mail.get("Message-ID", "")).strip("<>").split("@", 1)[0]
        message = Received(message_id, time.time())
        return "250 OK" if self.accept(message) else "451 Try again later"
