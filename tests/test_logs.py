"""Log redaction: callback tokens however their path is spelled, bearer tokens, configured
secrets and the channel secrets of the pipeline file."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from service import logs
from service.followups.pipeline_file.validation import load_text

TOKEN = "AbCdEf0123456789_-token"


@pytest.mark.parametrize(
    "path",
    [
        f"/callbacks/{TOKEN}",
        f"/%63allbacks/{TOKEN}",
        f"/%43ALLBACKS/{TOKEN}",
        f"/callbacks%2F{TOKEN}",
        f"/callbacks%2f{TOKEN}",
        f"/%63%61%6c%6c%62%61%63%6b%73/{TOKEN}",
        f"//callbacks//{TOKEN}",
    ],
)
def test_a_callback_token_is_redacted_however_the_path_is_spelled(path):
    redacted = logs.redact(f'"POST {path}?x=1 HTTP/1.1" 202')
    assert TOKEN not in redacted
    assert logs.REDACTED in redacted and "?x=1" in redacted


def test_other_paths_are_left_alone():
    text = "GET /calendar/2024 and /api/callbacks-count"
    assert logs.redact(text) == text


def test_the_formatter_redacts_messages_extra_fields_and_tracebacks():
    logs.add_secrets(["redis-password-in-a-url"])
    try:
        raise RuntimeError("cannot reach redis://:redis-password-in-a-url@host")
    except RuntimeError:
        record = logging.LogRecord(
            "nbrelay", logging.ERROR, __file__, 1, "hook: %s", ("Bearer abc.def",), None
        )
        record.exc_info = sys.exc_info()
    record.path = f"/%63allbacks/{TOKEN}"
    line = logs.JsonFormatter("web").format(record)
    entry = json.loads(line)
    assert "redis-password-in-a-url" not in line and TOKEN not in line and "abc.def" not in line
    assert entry["message"] == f"hook: Bearer {logs.REDACTED}"
    assert entry["path"] == f"/%63allbacks/{logs.REDACTED}"


def test_channel_secrets_are_redacted_once_the_pipeline_file_is_read():
    slack_url = "https://hooks.slack.com/services/T0/B0/only-in-this-test-42"
    hook_secret = "whsec_c2VjcmV0LW9ubHktaW4tdGhpcy10ZXN0"
    smtp_password = "smtp-password-only-in-this-test"
    assert logs.redact(slack_url) == slack_url  # not known before the file is read
    load_text(
        f"""\
channels:
  ops-slack: {{kind: slack, url: "${{SLACK_URL}}"}}
  ops-hook: {{kind: webhook, url: "https://hooks.example.com/in", secret: "{hook_secret}"}}
  mail:
    kind: email
    host: smtp.example.com
    sender: nbrelay@example.com
    to: [ops@example.com]
    username: nbrelay
    password: "${{SMTP_PASSWORD}}"
""",
        environ={"SLACK_URL": slack_url, "SMTP_PASSWORD": smtp_password},
    )
    for secret in (slack_url, hook_secret, smtp_password):
        assert logs.redact(f"failed with {secret}!") == f"failed with {logs.REDACTED}!"
