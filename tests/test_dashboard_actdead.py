"""The actions and dead letters pages, signed in through the Flask test client, against the test's
private Redis and the sandbox: real patches performed on sandbox notebooks and undone through the
page's button, real dead letters (syncs that failed for good in a real RQ worker) replayed
through the page's buttons; and the diff of a patch's fields."""

from __future__ import annotations

import re

import pytest
from rq import Queue

from service import keys
from service.followups.actions.ledger import Ledger
from service.queues import ACTIONS_QUEUE, SYNC_QUEUE
from service.web import create_app
from service.web.dashboard.diffs import NOT_SET, FieldDiff, Line, field_diffs
from tests.support.dashboard import csrf_token, page, press, signed_in
from tests.support.dead_letters import SETTINGS, make_dead_letter
from tests.support.web import API_TOKEN, CONSOLE, SECRET
from workers.runtime import run_worker

DAY = 24 * 3600
LIVE = 'hx-trigger="every 2s"'


@pytest.fixture
def components(make_components):
    return make_components(**CONSOLE, **SETTINGS)


@pytest.fixture
def app(components):
    return create_app(components=components)


@pytest.fixture
def client(app):
    return signed_in(app)


def followed(client, answer) -> str:
    """The page a button's 303 leads back to, with its notice."""
    assert answer.status_code == 303, answer.get_data(as_text=True)[:500]
    return page(client, answer.headers["Location"])


def notice(text: str) -> tuple[str, str]:
    match = re.search(r'<p class="notice (\w+)" role="status">([^<]*)</p>', text)
    assert match, "no notice on the page"
    return match.group(1), match.group(2)


def row(text: str, attribute: str, value: str) -> str:
    match = re.search(rf'<tr {attribute}="{re.escape(value)}".*?</tr>', text, re.S)
    assert match, f"no row {attribute}={value}"
    return match.group(0)


def assert_no_secrets(text: str, sandbox_app) -> None:
    for secret in (API_TOKEN, SECRET, sandbox_app.sandbox.token):
        assert secret not in text


# the diff of a patch's fields


def test_a_changed_scalar_is_one_line_out_and_one_in():
    (diff,) = field_diffs({"description": "old"}, {"description": "new"})
    assert diff == FieldDiff("description", [Line("removed", "old"), Line("added", "new")])
    assert diff.changed


def test_a_field_that_was_not_set_and_one_unchanged():
    unset, same = field_diffs(
        {"imageVersion": None, "name": "a"}, {"imageVersion": "v3", "name": "a"}
    )
    assert unset.lines == [Line("removed", NOT_SET), Line("added", "v3")]
    assert same == FieldDiff("name", [Line("same", "a")]) and not same.changed


def test_a_long_value_keeps_only_the_changed_lines_and_their_context():
    inputs = [{"fileName": f"f{n}.csv", "start": 0} for n in range(5)]
    changed = [{**i, "start": -3600} if i["fileName"] == "f2.csv" else i for i in inputs]
    (diff,) = field_diffs({"inputs": inputs}, {"inputs": changed})
    kinds = [line.kind for line in diff.lines]
    assert kinds[0] == kinds[-1] == "gap"  # the lines far from the change are left out
    assert [line.text.strip() for line in diff.lines if line.kind != "same"] == [
        "…",
        '"start": 0',
        '"start": -3600',
        "…",
    ]
    assert '"fileName": "f2.csv",' in [line.text.strip() for line in diff.lines]
    assert len(diff.lines) < 12


def test_multi_line_text_is_compared_line_by_line():
    (diff,) = field_diffs({"description": "one\ntwo\nthree"}, {"description": "one\n2\nthree"})
    assert diff.lines == [
        Line("same", "one"), Line("removed", "two"), Line("added", "2"), Line("same", "three")
    ]  # fmt: skip


# the actions page


def performed_patch(components, sandbox_app, key: str = "rule:test:0:x:completed") -> str:
    """A patch of a new sandbox notebook's description and image version, performed; returns
    the notebook's id."""
    notebook_id = sandbox_app.create_notebook("Report", description="old", imageVersion="v2")["id"]
    spec = {"notebook": notebook_id, "set": {"description": "new", "imageVersion": "v3"}}
    assert Ledger(components.redis, ttl=DAY).open(key, "patch", spec)
    assert components.followups.perform(key) == "done"
    return notebook_id


def test_a_patch_shows_what_it_changed_and_its_undo_sets_it_back(client, components, sandbox_app):
    key = "rule:test:0:x:completed"
    notebook_id = performed_patch(components, sandbox_app, key)
    shown = row(page(client, "/actions"), "data-action", key)
    assert 'data-state="done"' in shown and notebook_id in shown
    assert '<span class="removed">- old</span><span class="added">+ new</span>' in shown
    assert '<span class="removed">- v2</span><span class="added">+ v3</span>' in shown
    assert f'action="/actions/{key}/undo"' in shown and ">Undo</button>" in shown

    level, text = notice(followed(client, press(client, "/actions", f"/actions/{key}/undo")))
    undo = keys.undo_action(key)
    assert (level, text) == ("done", f"Undo of {key} queued as {undo}.")
    pending = page(client, "/actions")
    assert LIVE in pending and 'data-state="pending"' in row(pending, "data-action", undo)
    assert "to set: description, imageVersion" in row(pending, "data-action", undo)

    run_worker(
        components.settings, [ACTIONS_QUEUE], burst=True
    )  # the worker performs the queued undo
    restored = components.losant().get_notebook(sandbox_app.id, notebook_id)
    assert (restored.description, restored.image_version) == ("old", "v2")
    after = page(client, "/actions")
    assert LIVE not in after
    original = row(after, "data-action", key)
    assert f"undone by <code>{undo}</code>" in original and "Undo</button>" not in original
    reverted = row(after, "data-action", undo)
    assert '<span class="removed">- new</span><span class="added">+ old</span>' in reverted
    assert_no_secrets(after, sandbox_app)


def test_undoing_what_is_not_an_applied_patch_is_refused_with_a_notice(
    client, components, sandbox_app
):
    key = "rule:test:1:x:completed"
    notebook_id = sandbox_app.create_notebook("Nightly")["id"]
    assert Ledger(components.redis, ttl=DAY).open(key, "execute", {"notebook": notebook_id})
    text = page(client, "/actions")
    for target, expected in ((key, f"action {key} is not a patch that was applied"),
                             ("rule:nope", "no action rule:nope")):  # fmt: skip
        answer = client.post(f"/actions/{target}/undo", data={"csrf_token": csrf_token(text)})
        assert notice(followed(client, answer)) == ("error", expected)
    assert components.followups.action(keys.undo_action(key)) is None


def test_an_execute_links_to_the_execution_it_started(client, components, sandbox_app):
    key = "rule:test:2:x:completed"
    notebook_id = sandbox_app.create_notebook("Nightly")["id"]
    sandbox_app.set_behaviour(notebook_id, status="completed", durationSeconds=0.1)
    spec = {"notebook": notebook_id, "requested_by": "rule test"}
    assert Ledger(components.redis, ttl=DAY).open(key, "execute", spec)
    waiting = page(client, "/actions")
    assert LIVE in waiting and 'data-state="pending"' in row(waiting, "data-action", key)
    assert components.followups.perform(key) == "done"
    execution_id = components.followups.action(key).started_execution
    shown = row(page(client, "/actions"), "data-action", key)
    assert f'href="/executions/{execution_id}"' in shown and "for rule test" in shown
    assert "Undo" not in shown


def test_a_notification_shows_its_channel_and_outcome(client, components):
    key = "notice:a:1:1:slack"
    spec = {"channel": "slack", "alert": "a", "message": {"event": "firing"}}
    assert Ledger(components.redis, ttl=DAY).open(key, "notify", spec)
    assert components.followups.perform(key) == "failed"  # no pipeline file configures slack
    shown = row(page(client, "/actions?kind=notify"), "data-action", key)
    assert "channel <code>slack</code>: firing" in shown and "not delivered" in shown
    assert "channel slack is not configured any more" in shown


def test_the_kind_filter_shows_one_kind(client, components, sandbox_app):
    performed_patch(components, sandbox_app)
    assert Ledger(components.redis, ttl=DAY).open("rule:e", "execute", {"notebook": "Nightly"})
    patches = page(client, "/actions?kind=patch")
    assert 'data-kind="patch"' in patches and 'data-kind="execute"' not in patches
    assert 'data-kind="patch"' not in page(client, "/actions?kind=retry")
    assert "No actions of kind retry yet." in page(client, "/actions?kind=retry")
    everything = page(client, "/actions?kind=bogus")
    assert 'data-kind="patch"' in everything and 'data-kind="execute"' in everything


def test_an_undo_pressed_through_htmx_is_answered_with_a_redirect_header(
    client, components, sandbox_app
):
    key = "rule:test:0:x:completed"
    performed_patch(components, sandbox_app, key)
    answer = press(client, "/actions", f"/actions/{key}/undo", **{"HX-Request": "true"})
    assert answer.status_code == 204
    assert answer.headers["HX-Redirect"].startswith("/actions?notice=Undo+of+")


# the dead letters page


@pytest.fixture
def dead(components, sandbox_app):
    """Two dead letters, newest first: job id -> notebook id."""
    jobs = [make_dead_letter(components, sandbox_app, name) for name in ("A", "B")]
    return {job: components.queues.fetch(job).args[1] for job in reversed(jobs)}


def queued_syncs(components) -> list[str]:
    queue = Queue(SYNC_QUEUE, connection=components.rq_redis)
    return [job.args[1] for job in queue.get_jobs()]


def test_each_dead_letter_shows_its_error_and_a_replay_button(client, dead, sandbox_app):
    text = page(client, "/dead-letters")
    for job_id, notebook_id in dead.items():
        shown = row(text, "data-job", job_id)
        assert notebook_id in shown and "Scripted server error" in shown
        assert f'action="/dead-letters/{job_id}/replay"' in shown and ">Replay</button>" in shown
    assert 'action="/dead-letters/replay"' in text and ">Replay all</button>" in text
    assert "No dead letters" not in text
    assert_no_secrets(text, sandbox_app)


def test_replay_replays_that_letter_alone(client, components, dead):
    first, second = dead
    answer = press(client, "/dead-letters", f"/dead-letters/{first}/replay")
    text = followed(client, answer)
    assert notice(text) == ("done", f"Replayed 1: {first}.")
    assert f'data-job="{first}"' not in text and f'data-job="{second}"' in text
    assert queued_syncs(components) == [dead[first]]


def test_replay_all_replays_every_letter(client, components, dead):
    text = followed(client, press(client, "/dead-letters", "/dead-letters/replay"))
    assert notice(text)[0] == "done" and all(job in notice(text)[1] for job in dead)
    assert "No dead letters" in text and 'data-job="' not in text
    assert sorted(queued_syncs(components)) == sorted(dead.values())


def test_a_letter_replayed_elsewhere_is_answered_with_an_error_notice(client, components, dead):
    first, _ = dead
    text = page(client, "/dead-letters")
    components.dead_letters.replay([first])  # e.g. by `nbrelay dead-letters replay`
    answer = client.post(f"/dead-letters/{first}/replay", data={"csrf_token": csrf_token(text)})
    assert notice(followed(client, answer)) == ("error", f"no dead letter with id {first}")


def test_no_dead_letters(client):
    text = page(client, "/dead-letters")
    assert "No dead letters" in text and "Replay all" not in text


# every button needs the session's CSRF token


def test_every_button_without_its_csrf_token_is_refused_and_does_nothing(
    client, components, sandbox_app, dead
):
    key = "rule:test:0:x:completed"
    performed_patch(components, sandbox_app, key)
    first, _ = dead
    for action in (f"/actions/{key}/undo", f"/dead-letters/{first}/replay", "/dead-letters/replay"):
        for data in ({}, {"csrf_token": "forged"}):
            answer = client.post(action, data=data)
            assert answer.status_code == 403, action
            assert answer.get_json()["type"] == "Forbidden"
    assert components.followups.action(keys.undo_action(key)) is None
    assert len(components.dead_letters.all()) == 2 and queued_syncs(components) == []


def test_the_pages_and_buttons_need_a_sign_in(app):
    anonymous = app.test_client()
    for path in ("/actions", "/dead-letters"):
        assert anonymous.get(path).status_code == 303
    for action in ("/actions/k/undo", "/dead-letters/j/replay", "/dead-letters/replay"):
        answer = anonymous.post(action)
        assert answer.status_code == 303 and "/signin" in answer.headers["Location"]
