"""`nbrelay alerts test CHANNEL`: one real notification, never retried, secrets kept out."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

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


PAGING = {
    "pagerduty": (
        '{kind: pagerduty, routing_key: "${ONCALL_KEY}", url: "URL/v2/enqueue"}',
        "R0utingKeyOfPagerDuty0123456789a",
        "/v2/enqueue",
    ),
    "teams": (
        '{kind: teams, url: "${ONCALL_KEY}"}',
        "URL/workflows/x/invoke?sig=S1gSecret",
        "/workflows/x/invoke",
    ),
    "opsgenie": (
        '{kind: opsgenie, api_key: "${ONCALL_KEY}", url: "URL"}',
        "5f2a7c1e-8b3d-4e6f-9a0b-c1d2e3f4a5b6",
        "/v2/alerts",
    ),
}


def paging_test(tmp_path, http_server, kind: str) -> tuple[subprocess.CompletedProcess, str, str]:
    config, secret, path = PAGING[kind]
    secret = secret.replace("URL", http_server.url)
    pipelines = tmp_path / "pipelines.yaml"
    pipelines.write_text(f"channels:\n  oncall: {config.replace('URL', http_server.url)}\n")
    env = {**os.environ, "ONCALL_KEY": secret, "NBRELAY_PIPELINES": str(pipelines)}
    result = subprocess.run(
        [NBRELAY, "alerts", "test", "oncall"], capture_output=True, text=True, env=env,
        cwd=tmp_path, timeout=60,
    )  # fmt: skip
    return result, secret, path


@pytest.mark.parametrize("kind", sorted(PAGING))
def test_paging_channels_send_a_test_message(tmp_path, http_server, kind):
    http_server.default = Reply(202, {})
    result, secret, path = paging_test(tmp_path, http_server, kind)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"sent a test notification through oncall ({kind})\n"
    (request,) = http_server.requests
    assert request.path == path
    assert "Test notification from nbrelay (channel oncall)" in request.body.decode()
    assert secret not in result.stdout + result.stderr


@pytest.mark.parametrize("kind", sorted(PAGING))
def test_a_paging_channel_failure_names_no_secret(tmp_path, http_server, kind):
    http_server.default = Reply(400, "bad request")
    result, secret, _ = paging_test(tmp_path, http_server, kind)
    assert result.returncode == 1
    host = http_server.url.removeprefix("http://")
    assert result.stderr == (
        f"nbrelay: error: test notification through oncall failed: {kind}: HTTP 400 from {host}:"
        " bad request; check channel oncall in pipelines.yaml\n"
    )
    assert len(http_server.requests) == 1
