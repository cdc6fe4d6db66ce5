"""`nbrelay alerts test CHANNEL`: one real notification, never retried, secrets kept out."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.http_server import Reply

NBRELAY = str(Path(sys.executable).with_name("nbrelay"))


def alerts_test(tmp_path, url: str, *args: str) -> subprocess.CompletedProcess:
    path = tmp_path / "pipelines.yaml"
    path.write_text('channels:\n  ops: {kind: slack, url: "${OPS_SLACK}"}\n')
    env = {**os.environ, "OPS_SLACK": url, "NBRELAY_PIPELINES": str(path)}
    return subprocess.run(
        [NBRELAY, "alerts", "test", *args], capture_output=True, text=True, env=env, cwd=tmp_path,
        timeout=60,
    )  # fmt: skip


def test_sends_one_test_message(tmp_path, http_server):
    result = alerts_test(tmp_path, http_server.url + "/services/T/B/secret", "ops")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "sent a test notification through ops (slack)\n"
    (request,) = http_server.requests
    assert "Test notification from nbrelay (channel ops)" in request.json()["text"]


def test_a_failure_is_one_line_and_not_retried(tmp_path, http_server):
    http_server.default = Reply(500, "boom")
    result = alerts_test(tmp_path, http_server.url + "/services/T/B/secret", "ops")
    assert result.returncode == 1
    host = http_server.url.removeprefix("http://")
    assert result.stderr == (
        f"nbrelay: error: test notification through ops failed: slack: HTTP 500 from {host}: boom; "
        "check channel ops in pipelines.yaml\n"
    )
    assert len(http_server.requests) == 1


def test_unknown_channel_is_a_usage_problem(tmp_path, http_server):
    result = alerts_test(tmp_path, http_server.url, "pager")
    assert result.returncode == 2
    assert result.stderr == (
        "nbrelay: error: no channel named 'pager' in pipelines.yaml (channels: ops)\n"
    )
