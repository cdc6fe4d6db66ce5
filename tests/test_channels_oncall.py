"""The paging tools on-call teams use — PagerDuty (Events API v2), Microsoft Teams (an Adaptive
Card) and Opsgenie (Alert API) — against a real local HTTP sink: the documented fields of firing
and resolved messages, severity mapped, failures classified by the delivery path, and the routing
key, webhook URL and API key kept out of errors, descriptions and logs."""

from __future__ import annotations

import logging

import pytest
from pydantic import TypeAdapter

from service import logs
from service.followups.channels import ChannelConfig, build_channel
from service.followups.channels.delivery import RetryPolicy, deliver
from service.followups.messages import Event
from tests.support.alert_messages import firing_message
from tests.support.http_server import Reply

ROUTING_KEY = "R0utingKeyOfPagerDuty0123456789a"  # 32 characters, as PagerDuty issues them
GENIE_KEY = "5f2a7c1e-8b3d-4e6f-9a0b-c1d2e3f4a5b6"
TEAMS_PATH = "/workflows/abc/triggers/manual/paths/invoke"
TEAMS_QUERY = "?api-version=2016-06-01&sig=TeamsS1gnatureSecret"
ALERT_ID = "65a0c0ffee0000000000a001:65a0c0ffee0000000000b001:errored"
FAST = RetryPolicy(max_attempts=3, max_elapsed=10, backoff_base=0.01, backoff_max=0.05)


def channel(name: str, **config):
    return build_channel(name, TypeAdapter(ChannelConfig).validate_python(config))


def configs(url: str) -> dict[str, dict]:
    """One channel of each kind, all pointed at the sink."""
    return {
        "pagerduty": {"kind": "pagerduty", "routing_key": ROUTING_KEY, "url": url + "/v2/enqueue"},
        "teams": {"kind": "teams", "url": url + TEAMS_PATH + TEAMS_QUERY},
        "opsgenie": {"kind": "opsgenie", "api_key": GENIE_KEY, "url": url},
    }


SECRET_FIELDS = {"pagerduty": "routing_key", "teams": "url", "opsgenie": "api_key"}


def alert_message(**changes):
    values = {"alert_id": ALERT_ID, "application_id": "65a0c0ffee0000000000a001"}
    return firing_message(**{**values, **changes})


def resolved_message():
    return alert_message(
        id="msg_fedcba9876543210", event=Event.RESOLVED, status="completed", errors=(),
        log_url=None, error_log_url=None,
    )  # fmt: skip


# -- PagerDuty ------------------------------------------------------------------------------------


def test_pagerduty_triggers_with_the_alert_id_as_dedup_key(http_server):
    http_server.default = Reply(202, {"status": "success", "dedup_key": ALERT_ID})
    pager = channel("pager", **configs(http_server.url)["pagerduty"])
    pager.notify(alert_message(severity="critical"))
    (request,) = http_server.requests
    assert request.method == "POST" and request.path == "/v2/enqueue"
    assert request.headers["content-type"] == "application/json"
    event = request.json()
    assert event["routing_key"] == ROUTING_KEY
    assert event["event_action"] == "trigger"
    assert event["dedup_key"] == ALERT_ID
    payload = event["payload"]
    assert payload["summary"] == "Notebook “Nightly ETL” errored"
    assert payload["source"] == "nbrelay"
    assert payload["severity"] == "critical"
    assert payload["timestamp"] == "2024-05-01T02:03:10+00:00"  # when the run ended
    assert payload["component"] == "Nightly ETL"
    assert payload["group"] == "65a0c0ffee0000000000a001"
    assert payload["class"] == "errored"
    details = payload["custom_details"]
    assert details["Execution"] == "65a0c0ffee0000000000e001"
    assert details["Status"] == "errored"
    assert details["Notebook"] == "Nightly ETL (65a0c0ffee0000000000b001)"
    assert details["Failures"] == "3 failures in a row"
    assert details["Errors"] == ["KeyError: 'temperature' <column missing> & more"]
    assert details["Logs"] == {
        "result.error.log": "https://files.example.com/runs/e001/result.error.log",
        "result.log": "https://files.example.com/runs/e001/result.log",
    }
    assert event["links"] == [
        {
            "href": "https://files.example.com/runs/e001/result.error.log",
            "text": "result.error.log",
        },
        {"href": "https://files.example.com/runs/e001/result.log", "text": "result.log"},
    ]


def test_pagerduty_resolves_the_same_incident(http_server):
    pager = channel("pager", **configs(http_server.url)["pagerduty"])
    pager.notify(resolved_message())
    (request,) = http_server.requests
    assert request.json() == {
        "routing_key": ROUTING_KEY,
        "dedup_key": ALERT_ID,
        "event_action": "resolve",
    }


@pytest.mark.parametrize("severity", ["critical", "error", "warning", "info"])
def test_pagerduty_severity_is_the_alerts(http_server, severity):
    pager = channel("pager", **configs(http_server.url)["pagerduty"])
    pager.notify(alert_message(severity=severity))
    assert http_server.requests[0].json()["payload"]["severity"] == severity


def test_a_test_message_is_an_info_incident_of_its_own(http_server):
    pager = channel("pager", **configs(http_server.url)["pagerduty"], source="etl-host")
    test = firing_message(id="msg_test_1", event=Event.TEST, channel="pager", severity="critical")
    pager.notify(test)
    event = http_server.requests[0].json()
    assert event["event_action"] == "trigger" and event["dedup_key"] == "msg_test_1"
    assert event["payload"]["severity"] == "info"
    assert event["payload"]["source"] == "etl-host"


# -- Microsoft Teams ------------------------------------------------------------------------------


def test_teams_posts_an_adaptive_card(http_server):
    teams = channel("teams", **configs(http_server.url)["teams"])
    teams.notify(alert_message(severity="warning"))
    (request,) = http_server.requests
    assert request.path == TEAMS_PATH and request.query["sig"] == ["TeamsS1gnatureSecret"]
    message = request.json()
    assert message["type"] == "message"
    (attachment,) = message["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
    title, factset, error = card["body"]
    assert title["text"] == "FIRING · WARNING: Notebook “Nightly ETL” errored"
    assert title["color"] == "Warning" and title["weight"] == "Bolder"
    facts = {fact["title"]: fact["value"] for fact in factset["facts"]}
    assert facts["Notebook"] == "Nightly ETL (65a0c0ffee0000000000b001)"
    assert facts["Failure"] == "errored"
    assert facts["Execution"] == "65a0c0ffee0000000000e001"
    assert facts["Time"] == "2024-05-01 02:03:10 UTC"
    assert error["text"] == "KeyError: 'temperature' <column missing> & more"
    assert card["actions"] == [
        {
            "type": "Action.OpenUrl",
            "title": "result.error.log",
            "url": "https://files.example.com/runs/e001/result.error.log",
        },
        {
            "type": "Action.OpenUrl",
            "title": "result.log",
            "url": "https://files.example.com/runs/e001/result.log",
        },
    ]


def test_teams_resolved_card(http_server):
    teams = channel("teams", **configs(http_server.url)["teams"])
    teams.notify(resolved_message())
    card = http_server.requests[0].json()["attachments"][0]["content"]
    title, factset = card["body"]
    assert title["text"] == "RESOLVED: notebook “Nightly ETL” completed again"
    assert title["color"] == "Good"
    facts = {fact["title"]: fact["value"] for fact in factset["facts"]}
    assert facts["Status"] == "completed" and facts["Recovered after"] == "3 failures in a row"
    assert "actions" not in card  # no log published, no button


@pytest.mark.parametrize(("severity", "colour"), [("critical", "Attention"), ("info", "Default")])
def test_teams_colour_follows_severity(http_server, severity, colour):
    teams = channel("teams", **configs(http_server.url)["teams"])
    teams.notify(alert_message(severity=severity))
    title = http_server.requests[0].json()["attachments"][0]["content"]["body"][0]
    assert title["color"] == colour and title["text"].startswith(f"FIRING · {severity.upper()}:")


# -- Opsgenie -------------------------------------------------------------------------------------


def test_opsgenie_creates_an_alert_aliased_by_the_alert_id(http_server):
    http_server.default = Reply(202, {"result": "Request will be processed", "requestId": "r1"})
    genie = channel("genie", **configs(http_server.url)["opsgenie"])
    genie.notify(alert_message(severity="critical"))
    (request,) = http_server.requests
    assert request.path == "/v2/alerts"
    assert request.headers["authorization"] == f"GenieKey {GENIE_KEY}"
    alert = request.json()
    assert alert["alias"] == ALERT_ID
    assert alert["message"] == "Notebook “Nightly ETL” errored"
    assert alert["priority"] == "P1"
    assert alert["source"] == "nbrelay" and alert["entity"] == "Nightly ETL"
    assert alert["details"]["Execution"] == "65a0c0ffee0000000000e001"
    assert alert["details"]["Status"] == "errored"
    assert "KeyError: 'temperature' <column missing> & more" in alert["description"]
    assert (
        "result.error.log: https://files.example.com/runs/e001/result.error.log"
        in (alert["description"])
    )


def test_opsgenie_closes_the_alias_on_resolution(http_server):
    genie = channel("genie", **configs(http_server.url)["opsgenie"])
    genie.notify(resolved_message())
    (request,) = http_server.requests
    assert request.method == "POST"
    assert request.path == "/v2/alerts/" + ALERT_ID.replace(":", "%3A") + "/close"
    assert request.query == {"identifierType": ["alias"]}
    assert request.headers["authorization"] == f"GenieKey {GENIE_KEY}"
    assert request.json() == {
        "source": "nbrelay",
        "note": "Resolved: notebook “Nightly ETL” completed again",
    }


@pytest.mark.parametrize(
    ("severity", "priority"),
    [("critical", "P1"), ("error", "P2"), ("warning", "P3"), ("info", "P5")],
)
def test_opsgenie_priority_follows_severity(http_server, severity, priority):
    genie = channel("genie", **configs(http_server.url)["opsgenie"])
    genie.notify(alert_message(severity=severity))
    assert http_server.requests[0].json()["priority"] == priority


def test_opsgenie_message_is_cut_to_its_limit(http_server):
    genie = channel("genie", **configs(http_server.url)["opsgenie"])
    genie.notify(alert_message(notebook_name="n" * 300))
    message = http_server.requests[0].json()["message"]
    assert len(message) == 130 and message.endswith("…")


# -- all three ------------------------------------------------------------------------------------

KINDS = ["pagerduty", "teams", "opsgenie"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("status", "delivered", "attempts"),
    [(202, True, 1), (400, False, 1), (429, True, 2), (500, True, 2)],
)
def test_statuses_are_classified_by_the_delivery_path(
    http_server, kind, status, delivered, attempts
):
    """202 delivers; 400 is permanent (one attempt, recorded); 429 and 5xx are transient (tried
    again, here successfully)."""
    http_server.reply(Reply(status, {"message": "scripted"}), Reply(202, {}))
    target = channel(kind, **configs(http_server.url)[kind])
    result = deliver(target, alert_message(), FAST)
    assert (result.delivered, result.attempts) == (delivered, attempts)
    assert len(http_server.requests) == attempts
    if not delivered:
        assert result.permanent
        assert result.error == f"{kind}: HTTP {status} from {http_server.url[7:]}: " + (
            '{"message": "scripted"}'
        )


def test_teams_classic_webhooks_answer_200(http_server):
    http_server.default = Reply(200, "1")
    teams = channel("teams", **configs(http_server.url)["teams"])
    assert deliver(teams, alert_message(), FAST).delivered


@pytest.mark.parametrize("kind", KINDS)
def test_retry_after_is_honoured(http_server, kind):
    http_server.reply(Reply(429, headers={"Retry-After": "0.03"}))
    target = channel(kind, **configs(http_server.url)[kind])
    waits: list[float] = []
    assert deliver(target, alert_message(), FAST, sleep=waits.append).delivered
    assert waits == [0.03]


@pytest.mark.parametrize("kind", KINDS)
def test_secrets_stay_out_of_errors_descriptions_and_logs(http_server, kind):
    config = configs(http_server.url)[kind]
    secret = config[SECRET_FIELDS[kind]]
    # A receiver that quotes the request back in its error.
    http_server.default = Reply(400, f"invalid request: {secret}")
    target = channel(kind, **config)
    assert target.describe() == {"kind": kind, "host": http_server.url[7:]}
    assert secret not in repr(target.config)
    result = deliver(target, alert_message(), FAST)
    host = http_server.url[7:]
    assert result.error == f"{kind}: HTTP 400 from {host}: invalid request: {logs.REDACTED}"
    record = logging.makeLogRecord({"msg": "sending with %s", "args": (secret,)})
    line = logs.formatter("worker").format(record)
    assert secret not in line and logs.REDACTED in line


@pytest.mark.parametrize("kind", KINDS)
def test_secrets_come_from_the_environment(http_server, kind):
    config = configs(http_server.url)[kind]
    field = SECRET_FIELDS[kind]
    environ = {"ONCALL_SECRET": config[field]}
    loaded = TypeAdapter(ChannelConfig).validate_python(
        {**config, field: "${ONCALL_SECRET}"}, context={"environ": environ}
    )
    build_channel(kind, loaded).notify(alert_message())
    assert len(http_server.requests) == 1


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ({"kind": "pagerduty", "routing_key": "too-short"}, "32-character integration key"),
        ({"kind": "pagerduty", "routing_key": ROUTING_KEY, "url": "events"}, "http(s) URL"),
        ({"kind": "teams", "url": "teams.example.com/hook"}, "Teams incoming webhook"),
        ({"kind": "opsgenie", "api_key": "not-a-key"}, "API key of an Opsgenie API integration"),
        ({"kind": "opsgenie", "api_key": GENIE_KEY, "url": "ftp://x"}, "http(s) URL"),
    ],
)
def test_config_checks(config, problem):
    with pytest.raises(ValueError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        channel("bad", **config)
