"""Alert states and histories written by an earlier nbrelay, moved to the current keys when a
worker or scheduler starts; execute actions it opened, performed as it would have."""

from __future__ import annotations

import json

import redis as redis_lib

from service import keys
from service.events.logs_limit import LogsCaps
from service.followups.actions.ledger import Ledger
from service.followups.actions.performer import Performer, spec_marker
from service.followups.alerts.history import NotebookHistory
from service.followups.alerts.migration import migrate
from service.followups.alerts.state import Alerts, AlertState
from service.followups.messages import FailureClass
from service.followups.pipeline_file.model import AlertSettings
from service.losant import LosantClient
from service.marker import Marker
from workers.runtime import run_worker

APP = "65a0c0ffee0000000000a001"
NB = "65a0c0ffee0000000000b001"
DAY = 86400
SETTINGS = AlertSettings(group_wait=30, repeat_interval=3600, send_resolved=True)


def write_earlier_version(text_redis: redis_lib.Redis) -> str:
    """An errored notebook as an earlier nbrelay left it: history, a firing alert whose first
    message was sent, and that message's action record. Returns the old alert id."""
    old_id = f"{NB}:errored"
    text_redis.hset(keys.legacy_notebook_history(NB), mapping={"streak": 3})
    text_redis.expire(keys.legacy_notebook_history(NB), DAY)
    text_redis.zadd(keys.legacy_notebook_history_seen(NB), {"e1": 1, "e2": 2, "e3": 3})
    alert = {
        "id": old_id, "notebook_id": NB, "failure_class": "errored", "notebook_name": "ETL",
        "application_id": None, "state": "firing", "episode": 2, "channels": ["slack"],
        "group_wait": 30.0, "repeat_interval": 3600.0, "send_resolved": True, "failures": 3,
        "first_failure_at": 1.0, "last_failure_at": 3.0, "last_execution": {"id": "e3"},
        "observed": ["e3", "e2", "e1"], "notifications": 1, "last_notified_at": 2.0,
        "next_at": 3602.0, "resolved_at": None, "resolved_by": None,
    }  # fmt: skip
    text_redis.set(keys.alert(old_id), json.dumps(alert), ex=DAY)
    text_redis.sadd(keys.alerts(), old_id)
    text_redis.zadd(keys.alerts_due(), {old_id: 3602.0})
    Ledger(text_redis, ttl=DAY).open(f"notify:{old_id}:2:1:slack", "notify", {"channel": "slack"})
    return old_id


def test_histories_and_alerts_move_to_keys_that_name_the_application(text_redis):
    old_id = write_earlier_version(text_redis)
    migrate(text_redis, APP)

    history = NotebookHistory(text_redis, ttl=DAY).get(APP, NB)
    assert history.consecutive_failures == 3
    assert text_redis.zcard(keys.notebook_history_seen(APP, NB)) == 3
    assert 0 < text_redis.ttl(keys.notebook_history(APP, NB)) <= DAY
    new_id = keys.alert_id(APP, NB, "errored")
    alert = Alerts(text_redis, ttl=DAY).get(APP, NB, FailureClass.ERRORED)
    assert alert is not None and alert.id == new_id and alert.application_id == APP
    assert alert.state is AlertState.FIRING and alert.episode == 2 and alert.failures == 3
    assert text_redis.smembers(keys.alerts()) == {new_id}
    assert text_redis.zscore(keys.alerts_due(), new_id) == 3602.0
    assert 0 < text_redis.ttl(keys.alert(new_id)) <= DAY
    # The message already sent for this episode is known under its new key: never sent again.
    copied = Ledger(text_redis, ttl=DAY).get(keys.alert_notice(new_id, 2, 1, "slack"))
    assert copied is not None and copied.spec == {"channel": "slack"}
    leftovers = [keys.legacy_notebook_history(NB), keys.legacy_notebook_history_seen(NB)]
    assert text_redis.exists(*leftovers, keys.alert(old_id)) == 0
    assert text_redis.zscore(keys.alerts_due(), old_id) is None

    before = {key: text_redis.dump(key) for key in text_redis.scan_iter("nbrelay:*")}
    migrate(text_redis, APP)  # once is enough; again changes nothing
    assert {key: text_redis.dump(key) for key in text_redis.scan_iter("nbrelay:*")} == before


def test_state_written_since_in_the_new_layout_wins(text_redis):
    old_id = write_earlier_version(text_redis)
    alerts = Alerts(text_redis, ttl=DAY)
    newer = alerts.failed(APP, NB, FailureClass.ERRORED, {"id": "e9"}, ["email"], SETTINGS)
    text_redis.hset(keys.notebook_history(APP, NB), mapping={"streak": 1})
    migrate(text_redis, APP)
    assert alerts.get(APP, NB, FailureClass.ERRORED).channels == newer.channels == ["email"]
    assert NotebookHistory(text_redis, ttl=DAY).get(APP, NB).consecutive_failures == 1
    assert text_redis.exists(keys.alert(old_id), keys.legacy_notebook_history(NB)) == 0
    # The newer alert's own messages are not mistaken for ones sent in the dropped episode.
    new_id = keys.alert_id(APP, NB, "errored")
    assert Ledger(text_redis, ttl=DAY).get(keys.alert_notice(new_id, 2, 1, "slack")) is None


def test_a_move_cut_short_is_finished_by_the_next_one(text_redis):
    old_id = write_earlier_version(text_redis)
    migrate(text_redis, APP)
    new_id = keys.alert_id(APP, NB, "errored")
    moved = text_redis.get(keys.alert(new_id))
    # As if the process had died right after writing the new alert: the rest is still to do.
    text_redis.delete(keys.action(keys.alert_notice(new_id, 2, 1, "slack")))
    text_redis.srem(keys.alerts(), new_id)
    write_earlier_version(text_redis)
    migrate(text_redis, APP)
    assert text_redis.get(keys.alert(new_id)) == moved
    assert text_redis.smembers(keys.alerts()) == {new_id}
    assert Ledger(text_redis, ttl=DAY).get(keys.alert_notice(new_id, 2, 1, "slack")) is not None
    assert text_redis.exists(keys.alert(old_id)) == 0


def test_an_alert_that_cannot_be_read_is_left_and_the_rest_moves(text_redis, caplog):
    write_earlier_version(text_redis)
    broken = "65a0c0ffee0000000000b002:timeout"
    text_redis.set(keys.alert(broken), "{not json")
    text_redis.sadd(keys.alerts(), broken)
    migrate(text_redis, APP)
    assert "alert 65a0c0ffee0000000000b002:timeout of an earlier version" in caplog.text
    assert text_redis.get(keys.alert(broken)) == "{not json"
    assert keys.alert_id(APP, NB, "errored") in text_redis.smembers(keys.alerts())


def test_a_worker_moves_the_data_before_it_takes_a_job(make_components, text_redis):
    components = make_components()
    write_earlier_version(text_redis)
    run_worker(components.settings, burst=True)
    app = components.settings.losant_application_id
    assert text_redis.exists(keys.notebook_history(app, NB)) == 1
    assert text_redis.exists(keys.legacy_notebook_history(NB)) == 0


def test_an_execute_opened_by_an_earlier_version_finds_its_execution_as_it_did(
    text_redis, sandbox_app
):
    """An earlier version opened execute actions without a nonce. One in flight across the
    upgrade, whose answer was lost, still finds the oldest execution carrying its marker, and
    starts none again."""
    notebook = sandbox_app.create_notebook("Nightly")["id"]
    sandbox_app.set_behaviour(notebook, status="completed", durationSeconds=0.1)
    step = {"run": "r1", "step": "a", "attempt": 1}
    ledger = Ledger(text_redis, ttl=DAY, lease=0.0)
    spec = {"notebook": notebook, "context": None, "relative_to": None, "pipeline": step}
    assert ledger.open("run:r1:a:1", "execute", spec)
    assert spec_marker(spec) == Marker(run="r1", step="a", attempt=1)
    assert ledger.acquire("run:r1:a:1") is not None  # the attempt whose answer was lost
    first, later = (
        sandbox_app.execute(notebook, templateContext=json.dumps({"nbrelay": step}))
        for _ in range(2)
    )
    for execution_id in (first, later):
        sandbox_app.wait_for_status(notebook, execution_id)
    lease = ledger.acquire("run:r1:a:1")
    assert lease is not None and lease.attempt == 2

    def start(*args, **kwargs):
        raise AssertionError("started again")

    client = LosantClient(sandbox_app.sandbox.url, sandbox_app.sandbox.token)
    performer = Performer(ledger, lambda: client, sandbox_app.id, start, LogsCaps(text_redis))
    assert performer.execute(lease) == {"execution_id": first, "found_in_losant": True}
    # A retry of an earlier version counts the attempt its marker names, as it did.
    retry = Marker(action="retry:x:errored", rule="r", retry_of="x", attempt=2)
    assert retry.matches(retry) and not retry.matches(Marker(action="retry:x:errored"))
