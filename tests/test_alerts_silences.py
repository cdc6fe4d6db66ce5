"""Silences and alert history: silences created, listed and ended through the API, the CLI and
the dashboard; a silenced alert that keeps firing but sends nothing to a real HTTP sink and says
so, and whose next message after the silence goes out; an alert's episodes with their timeline.
Follow-ups run in-process (the Harness) on a real Redis; the web app reads the same Redis."""

from __future__ import annotations

import re
import textwrap
import time
from datetime import UTC, datetime, timedelta

import pytest

from service import keys
from service.cli import main
from service.config import Settings
from service.followups.messages import FailureClass
from service.web import create_app
from service.web.resources import EXTENSION
from tests.support.dashboard import csrf_token, sign_in
from tests.support.followups import Harness

API_TOKEN = "api-token-0123456789"
SECRET = "callback-secret-0123456789"


def environment(redis_server, sandbox_app) -> dict[str, str]:
    return {
        "NBRELAY_REDIS_URL": redis_server.url,
        "LOSANT_API_URL": sandbox_app.sandbox.url,
        "LOSANT_API_TOKEN": sandbox_app.sandbox.token,
        "LOSANT_APPLICATION_ID": sandbox_app.id,
        "NBRELAY_PUBLIC_URL": "http://relay.example.com",
        "NBRELAY_SECRET": SECRET,
        "NBRELAY_API_TOKEN": API_TOKEN,
    }


@pytest.fixture
def web(redis, redis_server, sandbox_app):
    """The web app on the test's Redis: an API client (bearer token) and its components."""
    app = create_app(Settings.from_env(environment(redis_server, sandbox_app), dotenv_path=None))
    components = app.extensions[EXTENSION]
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {API_TOKEN}"
    yield client, components
    components.close()


def in_an_hour() -> str:
    return (datetime.now(UTC) + timedelta(hours=1)).isoformat()


# the API


def test_silences_are_created_listed_and_ended(web, redis):
    client, _ = web
    created = client.post(
        "/api/silences",
        json={"matcher": {"notebook": "ETL"}, "duration": "2h", "author": "ann", "comment": "db"},
    )
    assert created.status_code == 201, created.get_json()
    silence = created.get_json()
    assert silence["matcher"] == {"notebook": "ETL"} and silence["state"] == "active"
    assert (silence["author"], silence["comment"], silence["endedBy"]) == ("ann", "db", None)
    ends = datetime.fromisoformat(silence["endsAt"]) - datetime.fromisoformat(silence["startsAt"])
    assert ends == timedelta(hours=2)
    assert created.headers["Location"] == f"/api/silences/{silence['id']}"
    assert client.get(created.headers["Location"]).get_json() == silence
    until = client.post(
        "/api/silences",
        json={"matcher": {"rule": "r"}, "endsAt": in_an_hour(), "author": "bo", "comment": "c"},
    ).get_json()
    listed = client.get("/api/silences").get_json()["items"]
    assert [s["id"] for s in listed] == [until["id"], silence["id"]]  # ending soonest first
    # kept until its end plus the retention
    ttl = redis.ttl(keys.silence(silence["id"]))
    assert 2 * 3600 + 30 * 86400 - 60 < ttl <= 2 * 3600 + 30 * 86400 + 1
    assert redis.ttl(keys.silences()) >= ttl  # the index expires too, after every silence in it

    ended = client.delete(f"/api/silences/{silence['id']}")
    assert ended.status_code == 200
    assert ended.get_json()["state"] == "ended" and ended.get_json()["endedBy"] == "api"
    listed = client.get("/api/silences").get_json()["items"]
    assert [(s["id"], s["state"]) for s in listed] == [
        (until["id"], "active"),
        (silence["id"], "ended"),  # recently ended ones are listed after those in force
    ]
    again = client.delete(f"/api/silences/{silence['id']}")
    assert again.status_code == 200 and again.get_json()["endsAt"] == ended.get_json()["endsAt"]
    missing = client.delete("/api/silences/0123abcd")
    assert missing.status_code == 404
    assert missing.get_json() == {"type": "NotFound", "message": "no silence 0123abcd"}
    assert client.get("/api/silences/0123abcd").status_code == 404


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"duration": "1h"}, "matcher must name exactly one of notebook, rule, alert"),
        (
            {"matcher": {"notebook": "a", "rule": "b"}, "duration": "1h"},
            "matcher must name exactly one of notebook, rule, alert",
        ),
        ({"matcher": {"pipeline": "p"}, "duration": "1h"}, "not 'pipeline'"),
        ({"matcher": {"notebook": " "}, "duration": "1h"}, "notebook must be a non-empty text"),
        ({"matcher": {"rule": "r"}}, "give either an end time (endsAt) or a duration"),
        (
            {"matcher": {"rule": "r"}, "duration": "1h", "endsAt": "2099-01-01T00:00:00Z"},
            "not both",
        ),
        ({"matcher": {"rule": "r"}, "duration": "soon"}, "duration: 'soon' is not a duration"),
        ({"matcher": {"rule": "r"}, "duration": "0s"}, "a silence must end in the future"),
        ({"matcher": {"rule": "r"}, "duration": "400d"}, "may last at most 366 days"),
        ({"matcher": {"rule": "r"}, "endsAt": "2099-01-01T00:00:00"}, "with its zone"),
        ({"matcher": {"rule": "r"}, "endsAt": "tomorrow"}, "endsAt must be an ISO 8601"),
        ({"matcher": {"rule": "r"}, "endsAt": "0001-01-01T00:00:00+01:00"}, "endsAt must be"),
        ({"matcher": {"rule": "r"}, "endsAt": "2001-01-01T00:00:00Z"}, "end in the future"),
        ({"matcher": {"rule": "r"}, "duration": "1h", "comment": ""}, "comment must be"),
        ({"matcher": {"rule": "r"}, "duration": "1h", "author": 7}, "author must be"),
        ({"matcher": {"rule": "r"}, "duration": "1h", "why": "x"}, "unknown field 'why'"),
    ],
)
def test_a_malformed_silence_is_a_400_that_says_why(web, body, message):
    client, components = web
    answer = client.post("/api/silences", json={"author": "ann", "comment": "c", **body})
    assert answer.status_code == 400
    assert answer.get_json()["type"] == "BadRequest"
    assert message in answer.get_json()["message"]
    assert components.followups.silences() == []


# a silenced alert


@pytest.fixture
def alerting(redis, redis_server, sandbox_app, tmp_path, http_server):
    path = tmp_path / "pipelines.yaml"
    path.write_text(
        textwrap.dedent(
            f"""\
            channels:
              slack: {{kind: slack, url: "{http_server.url}/services/T/B/secret"}}
            alerts: {{group_wait: 0s, repeat_interval: 0.5s}}
            rules:
              etl-failed:
                notebook: ETL
                statuses: [errored]
                actions: [{{notify: [slack]}}]
            """
        )
    )
    harness = Harness(redis_server.url, sandbox_app, path)
    yield harness
    harness.close()


def outcomes(h: Harness, alert) -> list[str]:
    """What came of each message of the alert's episode, in order."""
    return [
        "silenced" if (r.outcome or {}).get("silenced") else r.state.value
        for r in h.followups.alert_notifications(alert)
    ]


def held_back(h: Harness, notebook_id: str, what: str):
    """The notebook's errored alert, once one of its messages was held back by a silence."""
    return h.run_until(
        lambda: (
            (a := h.alerts.get(h.app.id, notebook_id, FailureClass.ERRORED))
            and "silenced" in outcomes(h, a)
            and a
        ),
        what,
    )


def test_a_silenced_alert_fires_but_sends_nothing_until_the_silence_ends(
    alerting, web, http_server
):
    h, (client, _) = alerting, web
    etl = h.notebook("ETL", status="errored")
    h.registry.refresh()
    silence = client.post(
        "/api/silences",
        json={"matcher": {"notebook": "ETL"}, "duration": "1h", "author": "a", "comment": "db"},
    ).get_json()
    h.app.execute(etl)
    alert = h.run_until(
        lambda: (
            (a := h.alerts.get(h.app.id, etl, FailureClass.ERRORED))
            and outcomes(h, a)[:2] == ["silenced", "silenced"]
            and a
        ),
        "two messages held back by the silence",
    )
    assert alert.state.value == "firing" and alert.rules == ["etl-failed"]
    assert http_server.requests == []
    (shown,) = client.get("/api/alerts").get_json()["items"]
    assert shown["silencedBy"] == [silence["id"]] and shown["state"] == "firing"

    assert client.delete(f"/api/silences/{silence['id']}").status_code == 200
    h.run_until(lambda: http_server.requests, "the next message after the silence")
    (request,) = http_server.requests  # those owed while silenced are not sent later
    assert request.json()["text"].startswith(":red_circle:")
    (shown,) = client.get("/api/alerts").get_json()["items"]
    assert shown["silencedBy"] == []

    # a silence of another notebook, rule or alert does not hold it back
    for matcher in ({"notebook": "Other"}, {"rule": "other"}, {"alert": "x:y:errored"}):
        client.post(
            "/api/silences",
            json={"matcher": matcher, "duration": "1h", "author": "a", "comment": "other"},
        )
    sent = len(http_server.requests)
    h.run_until(lambda: len(http_server.requests) > sent, "a repeat")


def test_a_silence_by_rule_or_alert_id_holds_the_alert_back(alerting, http_server):
    h = alerting
    etl = h.notebook("ETL", status="errored")
    h.registry.refresh()
    by_rule = h.followups.silence({"rule": "etl-failed"}, duration="1h", author="a", comment="rule")
    h.app.execute(etl)
    alert = held_back(h, etl, "a message held back by the rule's silence")
    by_alert = h.followups.silence({"alert": alert.id}, duration="1h", author="a", comment="one")
    h.followups.unsilence(by_rule.id, "test")
    assert [s.id for s in h.followups.silenced_by(alert)] == [by_alert.id]
    count = len(outcomes(h, alert))
    h.run_until(
        lambda: len(outcomes(h, h.followups.alert(alert.id))) > count + 1, "more messages held"
    )
    assert set(outcomes(h, h.followups.alert(alert.id))) == {"silenced"}
    assert http_server.requests == []


# alert history


def test_an_alert_history_has_each_episode_with_its_timeline(alerting, web, http_server):
    h, (client, _) = alerting, web
    etl = h.notebook("ETL", status="errored")
    h.registry.refresh()
    first = h.app.execute(etl)
    h.run_until(lambda: http_server.requests, "the first message")
    silence = h.followups.silence({"notebook": etl}, duration="1h", author="a", comment="quiet")
    alert = h.alerts.get(h.app.id, etl, FailureClass.ERRORED)
    assert alert is not None
    h.run_until(lambda: "silenced" in outcomes(h, h.followups.alert(alert.id)), "a held message")
    h.followups.unsilence(silence.id, "test")
    h.app.set_behaviour(etl, status="completed", durationSeconds=0.1)
    fixed = h.app.execute(etl)
    h.run_until(
        lambda: (
            http_server.requests[-1].json()["text"].startswith(":large_green_circle:")
            and not h.queue
        ),
        "the resolved message",
    )
    h.app.set_behaviour(etl, status="errored", durationSeconds=0.1)
    second = h.app.execute(etl)
    h.run_until(
        lambda: h.followups.alert(alert.id).episode == 2 and len(http_server.requests) >= 3,
        "the second episode's message",
    )

    answer = client.get(f"/api/alerts/{alert.id}")
    assert answer.status_code == 200
    detail = answer.get_json()
    assert detail["id"] == alert.id and detail["episode"] == 2
    newest, oldest = detail["episodes"][:2]
    assert len(detail["episodes"]) == 2
    assert newest["episode"] == 2 and newest["executions"][0] == second
    assert newest["timeline"][0]["event"] == "opened"
    assert oldest["episode"] == 1
    assert oldest["executions"] == [first]
    assert (oldest["resolvedBy"], oldest["resolvedAt"] is not None) == (fixed, True)
    timeline = oldest["timeline"]
    events = [
        (e["event"], e.get("message"), e.get("outcome"))
        for e in timeline
        if e["event"] != "message" or e["outcome"] != "delivered" or e["message"] == "resolved"
    ]
    # opened, the first message delivered, (repeats), held back by the silence, resolved
    assert events[0] == ("opened", None, None) and timeline[0]["execution"] == first
    assert timeline[1] == {**timeline[1], "event": "message", "message": "firing"}
    assert timeline[1]["channel"] == "slack" and timeline[1]["outcome"] == "delivered"
    assert ("message", "firing", "silenced") in events
    held = next(e for e in timeline if e.get("outcome") == "silenced")
    assert held["silencedBy"] == [silence.id]
    assert events[-2:] == [("resolved", None, None), ("message", "resolved", "delivered")]
    assert [e["at"] for e in timeline] == sorted(e["at"] for e in timeline)
    assert "secret" not in answer.get_data(as_text=True)

    missing = client.get("/api/alerts/app:nb:errored")
    assert missing.status_code == 404
    assert missing.get_json() == {"type": "NotFound", "message": "no alert app:nb:errored"}


# the CLI


def nbrelay(args, env, monkeypatch, tmp_path, capsys) -> tuple[int, str, str]:
    """Run `nbrelay ARGS` in this process as its console entry point does."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)  # no .env of anyone's
    with pytest.raises(SystemExit) as stopped:
        main(args)
    captured = capsys.readouterr()
    return int(stopped.value.code or 0), captured.out, captured.err


def test_cli_silences_lists_and_unsilences(
    redis, redis_server, sandbox_app, monkeypatch, tmp_path, capsys
):
    env = environment(redis_server, sandbox_app)
    run = lambda *args: nbrelay(list(args), env, monkeypatch, tmp_path, capsys)  # noqa: E731
    code, out, err = run(
        "alerts", "silence", "--notebook", "ETL", "--for", "2h", "--comment", "db upgrade",
        "--author", "ann",
    )  # fmt: skip
    assert (code, err) == (0, "")
    silence_id = out.strip()
    assert re.fullmatch(r"[0-9a-f]{32}", silence_id)
    until = (datetime.now(UTC) + timedelta(hours=3)).isoformat()
    code, out, _ = run("alerts", "silence", "--rule", "r", "--until", until, "--comment", "x")
    assert code == 0
    second = out.strip()

    code, out, _ = run("alerts", "silences")
    first_line, second_line = out.splitlines()
    assert first_line.startswith(f"{silence_id} active notebook ETL until ")
    assert first_line.endswith(" by ann: db upgrade")
    assert second_line.startswith(f"{second} active rule r until ")

    code, out, _ = run("alerts", "unsilence", silence_id)
    assert code == 0 and out.startswith(f"{silence_id} ended  notebook ETL")
    code, out, _ = run("alerts", "silences")
    assert [line.split()[:2] for line in out.splitlines()] == [
        [second, "active"],
        [silence_id, "ended"],
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--for", "1h", "--comment", "c"], "name exactly one of --notebook, --rule or --alert"),
        (["--notebook", "a", "--rule", "b", "--for", "1h", "--comment", "c"], "exactly one"),
        (["--notebook", "a", "--comment", "c"], "give either --for or --until"),
        (["--notebook", "a", "--for", "1h", "--until", "x", "--comment", "c"], "either"),
        (["--notebook", "a", "--for", "later", "--comment", "c"], "'later' is not a duration"),
        (["--notebook", "a", "--until", "2001-01-01T00:00Z", "--comment", "c"], "future"),
        (["--notebook", "a", "--for", "1h"], "Missing option '--comment'"),
    ],
)
def test_cli_bad_silence_is_one_line_and_exit_2(
    args, message, redis, redis_server, sandbox_app, monkeypatch, tmp_path, capsys
):
    env = environment(redis_server, sandbox_app)
    code, out, err = nbrelay(["alerts", "silence", *args], env, monkeypatch, tmp_path, capsys)
    assert code == 2 and out == ""
    assert err.startswith("nbrelay: error: ") and err.count("\n") == 1
    assert message in err


def test_cli_unsilence_of_an_unknown_silence_is_one_line_and_exit_2(
    redis, redis_server, sandbox_app, monkeypatch, tmp_path, capsys
):
    env = environment(redis_server, sandbox_app)
    code, _, err = nbrelay(["alerts", "unsilence", "abc123"], env, monkeypatch, tmp_path, capsys)
    assert (code, err) == (2, "nbrelay: error: no silence abc123\n")


# the dashboard


def test_dashboard_creates_and_ends_silences_with_csrf(web):
    client, components = web
    sign_in(client, API_TOKEN)
    page = client.get("/alerts").get_data(as_text=True)
    assert "No silences." in page and 'id="create-silence"' in page
    form = {
        "csrf_token": csrf_token(page),
        "matcher": "notebook",
        "value": "Nightly ETL",
        "duration": "90m",
        "comment": "warehouse maintenance",
    }
    assert client.post("/alerts/silences", data={**form, "csrf_token": "x"}).status_code == 403
    assert components.followups.silences() == []

    answer = client.post("/alerts/silences", data=form)
    assert answer.status_code == 303 and "level=done" in answer.headers["Location"]
    (silence,) = components.followups.silences()
    assert (silence.matcher, silence.value, silence.author) == (
        "notebook",
        "Nightly ETL",
        "dashboard",
    )
    assert silence.ends_at - silence.starts_at == pytest.approx(5400)
    page = client.get("/alerts").get_data(as_text=True)
    row = re.search(rf'<tr id="silence-{silence.id}".*?</tr>', page, re.S)
    assert row and "warehouse maintenance" in row.group(0) and "Nightly ETL" in row.group(0)
    end_url = f"/alerts/silences/{silence.id}/end"
    assert f'action="{end_url}"' in row.group(0) and "hx-confirm=" in row.group(0)

    refused = client.post("/alerts/silences", data={**form, "duration": "", "until": ""})
    assert refused.status_code == 303 and "level=error" in refused.headers["Location"]
    assert "endsAt" in refused.headers["Location"]

    assert client.post(end_url, data={}).status_code == 403  # no CSRF token
    assert components.followups.silences()[0].active(time.time())
    ended = client.post(end_url, data={"csrf_token": csrf_token(page)})
    assert ended.status_code == 303 and "level=done" in ended.headers["Location"]
    (silence,) = components.followups.silences()
    assert not silence.active(time.time()) and silence.ended_by == "dashboard"
    page = client.get("/alerts").get_data(as_text=True)
    row = re.search(rf'<tr id="silence-{silence.id}".*?</tr>', page, re.S)
    assert row and 'data-state="ended"' in row.group(0) and end_url not in row.group(0)
    unknown = client.post("/alerts/silences/0abc/end", data={"csrf_token": csrf_token(page)})
    assert "level=error" in unknown.headers["Location"]


def test_dashboard_says_an_alert_is_silenced(alerting, web, http_server):
    h, (client, _) = alerting, web
    etl = h.notebook("ETL", status="errored")
    h.registry.refresh()
    silence = h.followups.silence({"notebook": "ETL"}, duration="1h", author="a", comment="db")
    h.app.execute(etl)
    alert = held_back(h, etl, "a message held back")
    sign_in(client, API_TOKEN)
    page = client.get("/alerts").get_data(as_text=True)
    row = re.search(rf'<tr data-alert="{alert.id}".*?</tr>', page, re.S)
    assert row, page[:3000]
    assert "silenced by" in row.group(0) and f'href="#silence-{silence.id}"' in row.group(0)
    assert '<span class="status silenced">silenced</span>' in row.group(0)
    assert http_server.requests == []
