"""Structured logs: one JSON object a line on stderr, with secrets taken out.

Every process (web, worker, scheduler, `nbrelay up`) calls `configure()` once. Redaction happens
in the formatter, the last step before a line is written, so nothing that reaches a log (a
message, an extra field, a traceback, a gunicorn access line) can carry a callback token, a
bearer token or a configured secret.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

REDACTED = "[redacted]"


def _spelled_any_way(word: str) -> str:
    """A pattern for `word`, in any case, with any of its characters percent-encoded."""
    return "".join(
        f"(?:{re.escape(char)}|%{ord(char.lower()):02x}|%{ord(char.upper()):02x})" for char in word
    )


_SLASH = "(?:/|%2f)"
# `/callbacks/<token>` however the client spelled it: gunicorn decodes the path before routing, so
# `/%63allbacks%2F<token>` reaches the same view and must be redacted the same way.
_CALLBACK_PATH = re.compile(
    rf"({_SLASH}{_spelled_any_way('callbacks')}{_SLASH}+)[^/\s?#\"']+", re.IGNORECASE
)
_BEARER = re.compile(r"(?i)(bearer\s+)[^\s\"',]+")
_STANDARD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)

_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def add_secrets(values: Iterable[str | None]) -> None:
    """Register values that must never appear in a log line."""
    with _secrets_lock:
        _secrets.update(v for v in values if v and len(v) >= 6)


def redact(text: str) -> str:
    """`text` without callback tokens, bearer tokens and registered secrets."""
    text = _CALLBACK_PATH.sub(rf"\1{REDACTED}", text)
    text = _BEARER.sub(rf"\1{REDACTED}", text)
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return redact(str(value))


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object: time, level, logger, message, then extra fields."""

    def __init__(self, process: str | None = None) -> None:
        super().__init__()
        self.process_name = process

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if self.process_name:
            entry["process"] = self.process_name
        for name, value in vars(record).items():
            if name not in _STANDARD_ATTRIBUTES and not name.startswith("_"):
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(_clean(entry), default=str)


def configure(process: str, *, level: str = "INFO", secrets: Iterable[str | None] = ()) -> None:
    """Send every log record of this process, as JSON lines, to stderr."""
    add_secrets(secrets)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(process))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("urllib3", "werkzeug"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
