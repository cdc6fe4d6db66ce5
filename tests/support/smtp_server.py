"""A real SMTP server (aiosmtpd) on a free local port that keeps what it receives: plain,
STARTTLS or implicit TLS, with or without AUTH, and a throwaway certificate authority (trustme)
whose CA file the client is told to trust."""

from __future__ import annotations

import email
import email.policy
import ssl
import threading
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from service.runtime.processes import free_port, wait_until


@dataclass
class ReceivedMail:
    sender: str
    recipients: list[str]
    message: EmailMessage
    tls: bool
    login: str | None

    def text(self) -> str:
        """The plain-text part."""
        return self.message.get_body(preferencelist=("plain",)).get_content()


class CertificateAuthority:
    """A CA made for one test session, and a server certificate for 127.0.0.1 signed by it."""

    def __init__(self, directory: Path) -> None:
        self._ca = trustme.CA()
        self._server = self._ca.issue_cert("127.0.0.1", "localhost")
        self.ca_file = directory / "ca.pem"
        self._ca.cert_pem.write_to_path(str(self.ca_file))

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._server.configure_cert(context)
        return context


class SmtpSink:
    """security: "none", "starttls" (required before AUTH/MAIL) or "ssl" (implicit TLS)."""

    def __init__(
        self,
        security: str = "none",
        authority: CertificateAuthority | None = None,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.received: list[ReceivedMail] = []
        self.failed_logins = 0
        self._lock = threading.Lock()
        self.credentials = credentials
        tls = authority.server_context() if authority and security != "none" else None
        options: dict = {
            "hostname": "127.0.0.1",
            "port": self.port,
            # Implicit TLS protects the whole session, but aiosmtpd only counts STARTTLS as TLS.
            "auth_require_tls": security == "starttls",
        }
        if credentials:
            options["authenticator"] = self._authenticate
        if security == "starttls":
            options.update(tls_context=tls, require_starttls=True)
        elif security == "ssl":
            options["ssl_context"] = tls
        self._controller = Controller(self, **options)

    def start(self) -> SmtpSink:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedMail]:
        wait_until(lambda: len(self.received) >= count, timeout, f"{count} mails")
        return list(self.received)

    def _authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        if isinstance(auth_data, LoginPassword) and self.credentials == (
            auth_data.login.decode(),
            auth_data.password.decode(),
        ):
            return AuthResult(success=True, auth_data=auth_data.login.decode())
        with self._lock:
            self.failed_logins += 1
        return AuthResult(success=False, handled=False)

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd's hook
        login = session.auth_data if session.authenticated else None
        # STARTTLS shows in the session; implicit TLS only in the transport.
        tls = session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None
        with self._lock:
            self.received.append(
                ReceivedMail(
                    envelope.mail_from,
                    list(envelope.rcpt_tos),
                    email.message_from_bytes(envelope.content, policy=email.policy.default),
                    tls,
                    login,
                )
            )
        return "250 Message accepted"
