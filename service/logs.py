"""Logs on stderr, with secrets taken out: one JSON object a line for machines, or one short,
coloured line a record for a person at a terminal.

Every process (web, worker, scheduler, sandbox, `nbrelay up`) calls `configure()` once; without
a format chosen, a terminal gets human lines and anything else (a file, a pipe, a log
collector) JSON. Redaction happens in the formatters, the last step before a line is written, so
nothing that reaches a log (a message, an extra field, a traceback, a gunicorn access line) can
carry a callback token, a bearer token or a configured secret, in either format.
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

from service import terminal

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
# Colour codes some libraries (RQ) put into their messages: a log line carries only our own.
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_STANDARD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)

_secrets: set[str] = set()
# The same, longest first (a secret that contains another is cut out whole): sorted once here
# rather than on every line.
_secrets_longest_first: tuple[str, ...] = ()
_secrets_lock = threading.Lock()


def add_secrets(values: Iterable[str | None]) -> None:
    """Register values that must never appear in a log line."""
    global _secrets_longest_first
    with _secrets_lock:
        _secrets.update(v for v in values if v and len(v) >= 6)
        _secrets_longest_first = tuple(sorted(_secrets, key=len, reverse=True))


def redact(text: str) -> str:
    """`text` without callback tokens, bearer tokens and registered secrets."""
    text = _CALLBACK_PATH.sub(_keep_prefix, text)
    text = _BEARER.sub(_keep_prefix, text)
    for secret in _secrets_longest_first:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def _keep_prefix(match: re.Match[str]) -> str:
    """A match's first group, then REDACTED in place of the rest. (A function, not a template
    such as `\\1`: `re.sub` expands a template in Python on every call, match or not, which
    made redaction the costliest part of an access line.)"""
    return match.group(1) + REDACTED


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
            "message": _message(record),
        }
        if self.process_name:
            entry["process"] = self.process_name
        entry.update(_extra_fields(record))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(_clean(entry), default=str)


def _message(record: logging.LogRecord) -> str:
    return _ANSI.sub("", record.getMessage())


def _extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    return {
        name: value
        for name, value in vars(record).items()
        if name not in _STANDARD_ATTRIBUTES and not name.startswith("_")
    }


_PROCESS_STYLES = {
    "web": terminal.CYAN,
    "worker": terminal.MAGENTA,
    "scheduler": terminal.BLUE,
    "sandbox": terminal.YELLOW,
    "up": terminal.GREEN,
}
_LEVEL_STYLES = {
    "DEBUG": terminal.DIM,
    "WARNING": terminal.YELLOW,
    "ERROR": terminal.RED,
    "CRITICAL": terminal.RED,
}
# Fields a person at a terminal does not need on every line (they stay in the JSON lines).
_QUIET_FIELDS = frozenset(
    {"application", "job", "method", "path", "status", "remote", "userAgent", "bytes"}
)
_PROCESS_WIDTH = 9


class HumanFormatter(logging.Formatter):
    """Formats a record as one short line: time, process, the level when it is not info, the
    event, the message, then the extra fields the message does not already say."""

    def __init__(self, process: str | None = None, *, colour: bool = False) -> None:
        super().__init__()
        self.process_name = process or ""
        self.colour = colour

    def _paint(self, text: str, style: str | None) -> str:
        return terminal.paint(text, style, self.colour)

    def format(self, record: logging.LogRecord) -> str:
        message = redact(_message(record))
        fields = _extra_fields(record)
        event = fields.pop("event", None)
        parts = [
            self._paint(datetime.fromtimestamp(record.created).strftime("%H:%M:%S"), terminal.DIM),
            self._paint(
                f"{self.process_name:<{_PROCESS_WIDTH}}", _PROCESS_STYLES.get(self.process_name)
            ),
        ]
        if record.levelno != logging.INFO:
            level = record.levelname
            parts.append(self._paint(level.lower(), _LEVEL_STYLES.get(level)))
        if event:
            parts.append(self._paint(redact(str(event)), terminal.BOLD))
        parts.append(message)
        shown = [
            f"{name}={text}"
            for name, text in ((n, _field_text(v)) for n, v in fields.items())
            if name not in _QUIET_FIELDS and text and not _says(message, text)
        ]
        if shown:
            parts.append(self._paint(" ".join(shown), terminal.DIM))
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + redact(self.formatException(record.exc_info))
        return line


def _field_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(_clean(value), default=str, separators=(",", ":"))
    return redact(str(value))


def _says(message: str, text: str) -> bool:
    """Whether `text` appears in `message` as a word of its own."""
    return re.search(rf"(?<!\w){re.escape(text)}(?!\w)", message) is not None


_chosen: tuple[str, bool] = ("json", False)  # the format and colouring configure() picked


def formatter(process: str) -> logging.Formatter:
    """The formatter `configure()` chose for this process (JSON before it was called): for
    handlers that others set up, such as gunicorn's."""
    log_format, colour = _chosen
    if log_format == "human":
        return HumanFormatter(process, colour=colour)
    return JsonFormatter(process)


def configure(
    process: str,
    *,
    level: str = "info",
    secrets: Iterable[str | None] = (),
    log_format: str | None = None,
) -> None:
    """Send every log record of this process to stderr, as `log_format` lines ("json" or
    "human"); by default human lines on a terminal, JSON lines anywhere else."""
    global _chosen
    add_secrets(secrets)
    stream = sys.stderr
    chosen = log_format or ("human" if stream.isatty() else "json")
    _chosen = (chosen, chosen == "human" and terminal.wants_colour(stream))
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter(process))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("urllib3", "werkzeug"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
