"""Channels against real receivers: HTTP sinks for Slack and webhooks, an aiosmtpd server with
STARTTLS, implicit TLS and AUTH for email. Every failure is classified as transient or
permanent, and no secret appears in an error or a description."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time

import pytest
from pydantic import TypeAdapter

from service import defaults
from service.followups.channels import ChannelConfig, ChannelError, build_channel
from service.followups.channels.delivery import ONCE, RetryPolicy, deliver
from service.runtime.processes import free_port
from tests.support.alert_messages import firing_message
from tests.support.http_server import Reply
from tests.support.smtp_server import CertificateAuthority, SmtpSink

SLACK_PATH = "/services/T0000/B0000/s3cr3tTOKENxyz"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
FAST = RetryPolicy(max_attempts=3, max_elapsed=10, backoff_base=0.01, backoff_max=0.05)


def channel(name: str, **config):
    return build_channel(name, TypeAdapter(ChannelConfig).validate_python(config))


# -- Slack ----------------------------------------------------------------------------------------


def test_slack_posts_the_message_text(http_server):
    slack = channel("ops", kind="slack", url=http_server.url + SLACK_PATH)
    slack.notify(firing_message())
    (request,) = http_server.requests
    assert request.path == SLACK_PATH
    assert request.headers["content-type"] == "application/json"
    text = request.json()["text"]
    assert "Nightly ETL" in text and "65a0c0ffee0000000000e001" in text


def test_slack_404_is_permanent_and_tried_once(http_server):
    http_server.reply(Reply(404, "no_service"))
    slack = channel("ops", kind="slack", url=http_server.url + SLACK_PATH)
    result = deliver(slack, firing_message(), FAST)
    assert not result.delivered and result.permanent and result.attempts == 1
    assert len(http_server.requests) == 1
    assert result.error == f"slack: HTTP 404 from {http_server.url[7:]}: no_service"
    assert "s3cr3t" not in result.error and "/services" not in result.error


def test_slack_5xx_is_retried_until_it_succeeds(http_server):
    http_server.reply(Reply(500, "oops"), Reply(503))
    slack = channel("ops", kind="slack", url=http_server.url + SLACK_PATH)
    result = deliver(slack, firing_message(), FAST)
    assert result.delivered and result.attempts == 3


def test_slack_5xx_after_the_last_attempt_is_final(http_server):
    http_server.default = Reply(502)
    slack = channel("ops", kind="slack", url=http_server.url + SLACK_PATH)
    result = deliver(slack, firing_message(), FAST)
    assert not result.delivered and result.permanent and result.attempts == 3
    assert len(http_server.requests) == 3


def test_retries_are_bounded_by_elapsed_time(http_server):
    http_server.default = Reply(500)
    slack = channel("ops", kind="slack", url=http_server.url + SLACK_PATH)
    policy = RetryPolicy(max_attempts=100, max_elapsed=0.3, backoff_base=0.1, backoff_max=0.1)
    started = time.monotonic()
    result = deliver(slack, firing_message(), policy)
    assert not result.delivered and result.permanent
    assert 1 < result.attempts < 10
    assert time.monotonic() - started < 2


def test_the_default_retries_outlast_a_receiver_down_for_half_a_minute(http_server):
    """Found by the fault soak: with full jitter, four attempts could all fall within the first
    few seconds of a receiver's outage, and the alert was never delivered."""
    slack = channel("ops", kind="slack", url=http_server.url + SLACK_PATH)
    for attempt in range(20):  # the waits are partly random; a short Retry-After is no shortcut
        http_server.default = Reply(503, headers={"Retry-After": "1"} if attempt % 2 else {})
        now = [0.0]
        waits: list[float] = []

        def sleep(seconds: float, now: list[float] = now, waits: list[float] = waits) -> None:
            waits.append(seconds)
            now[0] += seconds

        result = deliver(slack, firing_message(), sleep=sleep, clock=lambda now=now: now[0])
        assert not result.delivered and result.attempts == defaults.CHANNEL_MAX_ATTEMPTS
        assert 30 <= sum(waits) <= defaults.CHANNEL_MAX_ELAPSED


def test_retry_after_is_honoured(http_server):
    http_server.reply(Reply(429, headers={"Retry-After": "0.2"}))
    slack = channel("ops", kind="slack", url=http_server.url + SLACK_PATH)
    waits: list[float] = []
    result = deliver(slack, firing_message(), FAST, sleep=waits.append)
    assert result.delivered and result.attempts == 2
    assert waits == [0.05]  # asked for 0.2 s, capped by the policy's backoff_max


def test_test_notifications_are_never_retried(http_server):
    http_server.default = Reply(500)
    slack = channel("ops", kind="slack", url=http_server.url + SLACK_PATH)
    result = deliver(slack, firing_message(), ONCE)
    assert result.attempts == 1 and len(http_server.requests) == 1


def test_unreachable_and_slow_endpoints_are_transient(http_server):
    port = free_port()
    dead = channel("ops", kind="slack", url=f"http://127.0.0.1:{port}{SLACK_PATH}")
    with pytest.raises(ChannelError) as refused:
        dead.notify(firing_message())
    assert not refused.value.permanent
    assert refused.value.message == f"slack: cannot reach 127.0.0.1:{port} (ConnectionError)"

    http_server.reply(Reply(200, delay=1.0))
    slow = channel("ops", kind="slack", url=http_server.url + SLACK_PATH, timeout=0.2)
    with pytest.raises(ChannelError) as timed_out:
        slow.notify(firing_message())
    assert not timed_out.value.permanent
    assert "no answer" in timed_out.value.message and "s3cr3t" not in timed_out.value.message


def test_slack_url_stays_secret(http_server):
    slack = channel("ops", kind="slack", url=http_server.url + SLACK_PATH)
    assert "s3cr3t" not in repr(slack.config)
    assert slack.describe() == {"kind": "slack", "host": http_server.url[7:]}


def test_redirects_are_not_followed(http_server):
    http_server.reply(Reply(302, headers={"Location": "http://127.0.0.1:1/elsewhere"}))
    slack = channel("ops", kind="slack", url=http_server.url + SLACK_PATH)
    result = deliver(slack, firing_message(), FAST)
    assert result.permanent and result.attempts == 1


# -- Webhook --------------------------------------------------------------------------------------


def test_webhook_is_signed_per_standard_webhooks(http_server):
    hook = channel(
        "hook", kind="webhook", url=http_server.url + "/in?token=abc", secret=WEBHOOK_SECRET
    )
    message = firing_message()
    hook.notify(message)
    (request,) = http_server.requests
    assert request.headers["webhook-id"] == message.id
    timestamp = int(request.headers["webhook-timestamp"])
    assert abs(time.time() - timestamp) < 60
    # Verify independently: HMAC-SHA256 over id.timestamp.body with the base64-decoded key.
    key = base64.b64decode(WEBHOOK_SECRET.removeprefix("whsec_"))
    signed = f"{message.id}.{timestamp}.".encode() + request.body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert request.headers["webhook-signature"] == f"v1,{expected}"
    payload = json.loads(request.body)
    assert payload["type"] == "notebook.alert.firing"
    assert payload["data"]["execution_id"] == "65a0c0ffee0000000000e001"


def test_webhook_id_is_stable_across_attempts(http_server):
    http_server.reply(Reply(503))
    hook = channel("hook", kind="webhook", url=http_server.url + "/in", secret=WEBHOOK_SECRET)
    assert deliver(hook, firing_message(), FAST).delivered
    ids = {r.headers["webhook-id"] for r in http_server.requests}
    assert len(http_server.requests) == 2 and ids == {"msg_0123456789abcdef"}


@pytest.mark.parametrize(
    ("status", "permanent"), [(400, True), (410, True), (429, False), (504, False)]
)
def test_webhook_status_classes(http_server, status, permanent):
    http_server.reply(Reply(status))
    hook = channel("hook", kind="webhook", url=http_server.url + "/in", secret=WEBHOOK_SECRET)
    with pytest.raises(ChannelError) as failure:
        hook.notify(firing_message())
    assert failure.value.permanent is permanent


def test_webhook_secret_must_be_whsec_base64():
    for bad in ("plain", "whsec_!!!", "whsec_" + base64.b64encode(b"short").decode()):
        with pytest.raises(ValueError, match="whsec_|bytes"):
            channel("hook", kind="webhook", url="https://example.com/", secret=bad)


def test_webhook_secret_from_the_environment(http_server):
    config = TypeAdapter(ChannelConfig).validate_python(
        {"kind": "webhook", "url": http_server.url, "secret": "${HOOK_SECRET}"},
        context={"environ": {"HOOK_SECRET": WEBHOOK_SECRET}},
    )
    assert config.secret.get_secret_value() == WEBHOOK_SECRET
    assert WEBHOOK_SECRET not in repr(config)
    assert "secret" not in build_channel("hook", config).describe()


# -- Email ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def authority(tmp_path_factory) -> CertificateAuthority:
    return CertificateAuthority(tmp_path_factory.mktemp("ca"))


@pytest.fixture
def smtp(request, authority):
    security, credentials = request.param
    sink = SmtpSink(security, authority, credentials).start()
    yield sink
    sink.stop()


def email_channel(sink: SmtpSink, authority: CertificateAuthority, **changes):
    config = {
        "kind": "email",
        "host": "127.0.0.1",
        "port": sink.port,
        "security": "starttls",
        "from": "nbrelay@example.com",
        "to": ["oncall@example.com", "lead@example.com"],
        "ca_file": str(authority.ca_file),
        "timeout": 5,
        **changes,
    }
    return channel("oncall", **config)


@pytest.mark.parametrize("smtp", [("starttls", ("nbrelay", "pa55word"))], indirect=True)
def test_email_over_starttls_with_login(smtp, authority):
    mailer = email_channel(smtp, authority, username="nbrelay", password="pa55word")
    mailer.notify(firing_message())
    (mail,) = smtp.wait_for(1)
    assert mail.tls and mail.login == "nbrelay"
    assert mail.recipients == ["oncall@example.com", "lead@example.com"]
    assert mail.message["Subject"] == "[nbrelay] Notebook “Nightly ETL” errored"
    assert mail.message["Message-ID"] == "<msg_0123456789abcdef@nbrelay>"
    assert "Execution:  65a0c0ffee0000000000e001" in mail.text()


@pytest.mark.parametrize("smtp", [("ssl", ("nbrelay", "pa55word"))], indirect=True)
def test_email_over_implicit_tls(smtp, authority):
    mailer = email_channel(smtp, authority, security="ssl", username="nbrelay", password="pa55word")
    mailer.notify(firing_message())
    (mail,) = smtp.wait_for(1)
    assert mail.tls and mail.login == "nbrelay"


@pytest.mark.parametrize("smtp", [("starttls", ("nbrelay", "pa55word"))], indirect=True)
def test_email_refused_login_is_permanent_and_keeps_the_password_secret(smtp, authority):
    mailer = email_channel(smtp, authority, username="nbrelay", password="wrong-horse")
    result = deliver(mailer, firing_message(), FAST)
    assert not result.delivered and result.permanent and result.attempts == 1
    assert smtp.failed_logins >= 1 and smtp.received == []  # smtplib tries PLAIN, then LOGIN
    assert result.error == f"email: 127.0.0.1:{smtp.port} refused the login (535)"
    assert "wrong-horse" not in repr(mailer.config) and "wrong-horse" not in str(mailer.describe())


@pytest.mark.parametrize("smtp", [("starttls", None)], indirect=True)
def test_email_untrusted_certificate_is_permanent(smtp, authority):
    mailer = email_channel(smtp, authority, ca_file=None)
    with pytest.raises(ChannelError) as failure:
        mailer.notify(firing_message())
    assert failure.value.permanent and "not trusted" in failure.value.message


@pytest.mark.parametrize("smtp", [("none", None)], indirect=True)
def test_email_starttls_required_but_not_offered_is_permanent(smtp, authority):
    with pytest.raises(ChannelError, match="does not offer STARTTLS") as failure:
        email_channel(smtp, authority).notify(firing_message())
    assert failure.value.permanent
    plain = email_channel(smtp, authority, security="none")
    plain.notify(firing_message())
    assert not smtp.wait_for(1)[0].tls


def test_email_server_down_is_transient(authority, tmp_path):
    port = free_port()
    config = {
        "kind": "email", "host": "127.0.0.1", "port": port, "from": "a@b.c", "to": ["d@e.f"],
        "timeout": 2,
    }  # fmt: skip
    with pytest.raises(ChannelError) as failure:
        channel("oncall", **config).notify(firing_message())
    assert not failure.value.permanent
    assert (
        failure.value.message
        == f"email: cannot deliver through 127.0.0.1:{port} (ConnectionRefusedError)"
    )


def test_email_config_checks():
    base = {"kind": "email", "host": "h", "from": "a@b.c", "to": ["d@e.f"]}
    with pytest.raises(ValueError, match="username and password go together"):
        channel("m", **base, username="u")
    with pytest.raises(ValueError, match="not an email address"):
        channel("m", **{**base, "to": ["nobody"]})
    assert channel("m", **base, security="ssl").config.effective_port == 465


# -- Log ------------------------------------------------------------------------------------------


def test_log_channel_writes_one_line(caplog):
    log = channel("audit", kind="log", level="error")
    with caplog.at_level(logging.INFO, logger="nbrelay.alerts"):
        log.notify(firing_message())
    (record,) = caplog.records
    assert record.levelno == logging.ERROR and record.channel == "audit"
    assert record.getMessage().startswith("Notebook “Nightly ETL” errored execution=")
