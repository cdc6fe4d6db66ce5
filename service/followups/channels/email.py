"""Email over SMTP: STARTTLS (default), implicit TLS ("ssl") or plain, with optional login.
The server's certificate is always verified, against `ca_file` when one is given."""

from __future__ import annotations

import re
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from service import defaults
from service.followups.channels.base import Channel, ChannelError
from service.followups.channels.secrets import Secret
from service.followups.messages import AlertMessage, email_html, email_subject, email_text

DEFAULT_PORTS = {"starttls": 587, "ssl": 465, "none": 25}
ADDRESS = r"^[^@\s]+@[^@\s]+$"


class EmailConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    kind: Literal["email"]
    host: str = Field(min_length=1)
    port: int | None = Field(default=None, ge=1, le=65535)
    security: Literal["starttls", "ssl", "none"] = "starttls"
    username: str | None = None
    password: Secret | None = None
    sender: str = Field(alias="from", pattern=ADDRESS)
    to: list[str] = Field(min_length=1)
    ca_file: Path | None = None
    timeout: float = defaults.CHANNEL_TIMEOUT

    @field_validator("to")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        bad = [a for a in value if not re.match(ADDRESS, a)]
        if bad:
            raise ValueError(f"not an email address: {', '.join(bad)}")
        return value

    @field_validator("ca_file")
    @classmethod
    def _readable(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"file not found: {value}")
        return value

    @model_validator(mode="after")
    def _login_pair(self) -> EmailConfig:
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together")
        return self

    @property
    def effective_port(self) -> int:
        return self.port or DEFAULT_PORTS[self.security]


class EmailChannel(Channel):
    kind = "email"

    def __init__(self, name: str, config: EmailConfig) -> None:
        super().__init__(name)
        self.config = config

    def notify(self, message: AlertMessage) -> None:
        """One SMTP session. The Message-ID is the alert message's id, so a receiver can tell a
        repeated delivery from a new alert."""
        try:
            with self._connect() as smtp:
                self._login(smtp)
                smtp.send_message(self._compose(message))
        except smtplib.SMTPAuthenticationError as exc:
            raise ChannelError(
                f"email: {self._server} refused the login ({exc.smtp_code})", permanent=True
            ) from None
        except smtplib.SMTPRecipientsRefused as exc:
            codes = sorted({code for code, _ in exc.recipients.values()})
            raise ChannelError(
                f"email: {self._server} refused the recipients ({', '.join(map(str, codes))})",
                permanent=all(code >= 500 for code in codes),
            ) from None
        except smtplib.SMTPResponseException as exc:
            raise ChannelError(
                f"email: {self._server} answered {exc.smtp_code}", permanent=exc.smtp_code >= 500
            ) from None
        except ssl.SSLCertVerificationError as exc:
            raise ChannelError(
                f"email: TLS certificate of {self._server} not trusted ({exc.verify_message})",
                permanent=True,
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise ChannelError(
                f"email: cannot deliver through {self._server} ({type(exc).__name__})"
            ) from None

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "server": self._server,
            "security": self.config.security,
            "login": self.config.username is not None,
            "to": list(self.config.to),
        }

    @property
    def _server(self) -> str:
        return f"{self.config.host}:{self.config.effective_port}"

    def _tls_context(self) -> ssl.SSLContext:
        cafile = str(self.config.ca_file) if self.config.ca_file else None
        return ssl.create_default_context(cafile=cafile)

    def _connect(self) -> smtplib.SMTP:
        host, port, timeout = self.config.host, self.config.effective_port, self.config.timeout
        if self.config.security == "ssl":
            return smtplib.SMTP_SSL(host, port, timeout=timeout, context=self._tls_context())
        smtp = smtplib.SMTP(host, port, timeout=timeout)
        try:
            if self.config.security == "starttls":
                smtp.starttls(context=self._tls_context())
        except smtplib.SMTPNotSupportedError:
            smtp.close()
            raise ChannelError(
                f"email: {self._server} does not offer STARTTLS", permanent=True
            ) from None
        except BaseException:
            smtp.close()
            raise
        return smtp

    def _login(self, smtp: smtplib.SMTP) -> None:
        if self.config.username is None or self.config.password is None:
            return
        try:
            smtp.login(self.config.username, self.config.password.get_secret_value())
        except smtplib.SMTPNotSupportedError:
            raise ChannelError(
                f"email: {self._server} does not offer AUTH", permanent=True
            ) from None

    def _compose(self, message: AlertMessage) -> EmailMessage:
        mail = EmailMessage()
        mail["Subject"] = email_subject(message)
        mail["From"] = self.config.sender
        mail["To"] = ", ".join(self.config.to)
        mail["Date"] = formatdate(message.created_at.timestamp(), usegmt=True)
        mail["Message-ID"] = f"<{message.id}@nbrelay>"
        mail.set_content(email_text(message))
        mail.add_alternative(email_html(message), subtype="html")
        return mail
