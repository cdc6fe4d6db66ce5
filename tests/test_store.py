import json

import pytest

from service import defaults, keys
from service.events.hints import Incoming, parse_hint
from service.events.records import ExecutionRecord
from service.events.store import RECORD_HINT, ExecutionStore
from service.events.sync_state import LeaseLost, SyncState
from service.times import now_iso

APP = "575ec8687ae143cd83dc4a97"
NB = "5c782b8d4f3a8e51c1db42e4"
OTHER_NB = "5c782b8d4f3a8e51c1db42e5"
DAY = 24 * 3600


def execution(n: int, status: str, queued: str, notebook: str = NB, **fields) -> dict:
    return {
        "id": f"{n:024x}",
        "notebookExecutionId": f"{n:024x}",
        "notebookId": notebook,
        "applicationId": APP,
        "status": status,
        "runQueuedAt": queued,
        "maxAllowedRunMinutes": 5,
        "executionErrors": [],
        **fields,
    }


@pytest.fixture
def store(text_redis):
    return ExecutionStore(text_redis, ttl=2 * DAY)


@pytest.fixture
def syncs(text_redis):
    return SyncState(text_redis, lease_seconds=30, ttl=2 * DAY)


def fence(syncs: SyncState, notebook: str = NB) -> int:
    claim = syncs.begin(APP, notebook, "job", 0)
    return claim.fence


def test_records_are_stored_as_losant_returned_them(store, syncs):
    record = execution(
        1, "inProgress", "2026-01-01T10:00:00.123Z", runStartedAt="2026-01-01T10:00:01.000Z"
    )
    assert store.upsert(APP, NB, [record], fence=fence(syncs)) == []
    stored = store.get(record["id"])
    assert stored.losant == record
    assert (stored.application_id, stored.notebook_id, stored.status) == (APP, NB, "inProgress")
    assert stored.meta["first_seen_at"] == stored.meta["updated_at"]


def test_a_run_first_seen_in_flight_is_checked_until_it_ends(store, syncs):
    token = fence(syncs)
    running = execution(1, "inProgress", "2026-01-01T10:00:00Z")
    done = execution(2, "completed", "2026-01-01T10:00:01Z")
    store.upsert(APP, NB, [running, done], fence=token, now=100.0, first_check_after=15)
    assert store.due_pending(115.0) == [(APP, NB, running["id"])]
    assert store.pending_count_since(APP, NB, 0) == 0  # not a run nbrelay waits for
    store.upsert(APP, NB, [running], fence=token, now=200.0, first_check_after=15)
    assert store.due_pending(115.0) == [(APP, NB, running["id"])]  # the first check stays
    store.upsert(APP, NB, [{**running, "status": "completed"}], fence=token, first_check_after=15)
    assert store.due_pending(1e12) == []


def test_a_run_nbrelay_started_keeps_its_own_first_check(store, syncs):
    running = execution(1, "inProgress", "2026-01-01T10:00:00Z")
    store.record_request(
        application_id=APP,
        notebook_id=NB,
        execution_id=running["id"],
        requested_by="test",
        requested_at=100.0,
        first_check_at=400.0,
    )
    store.upsert(APP, NB, [running], fence=fence(syncs), now=100.0, first_check_after=15)
    assert store.due_pending(399.0) == []
    assert store.due_pending(400.0) == [(APP, NB, running["id"])]


def test_a_terminal_transition_is_claimed_once(store, syncs):
    token = fence(syncs)
    running = execution(1, "inProgress", "2026-01-01T10:00:00Z")
    done = execution(1, "completed", "2026-01-01T10:00:00Z")
    assert store.upsert(APP, NB, [running], fence=token) == []
    assert store.upsert(APP, NB, [done], fence=token) == [done["id"]]
    assert store.upsert(APP, NB, [done], fence=token) == []
    assert store.outbox(APP, NB) == [done["id"]]
    store.finish_transitions(APP, NB, [store.get(done["id"])])
    assert store.outbox(APP, NB) == []
    assert store.get(done["id"]).meta["terminal_at"]


def test_a_terminal_run_read_again_unchanged_is_not_written_again(store, syncs):
    token = fence(syncs)
    done = execution(1, "completed", "2026-01-01T10:00:00Z")
    store.upsert(APP, NB, [done], fence=token, now=100.0)
    store.upsert(APP, NB, [done], fence=token, now=200.0)
    assert store.get(done["id"]).meta["updated_at"].startswith("1970-01-01T00:01:40")
    changed = {**done, "outputsCompletedAt": "2026-01-01T10:05:00Z"}
    store.upsert(APP, NB, [changed], fence=token, now=300.0)
    stored = store.get(done["id"])
    assert stored.losant == changed
    assert stored.meta["updated_at"].startswith("1970-01-01T00:05:00")


def test_an_executions_metadata_stays_in_redis_compact_encoding(store, syncs, text_redis):
    done = execution(1, "completed", "2026-01-01T10:00:00Z", templateContext='{"x": 1}' * 40)
    store.upsert(APP, NB, [done], fence=fence(syncs))
    assert text_redis.object("encoding", keys.execution(done["id"])) == "listpack"
    assert store.get(done["id"]).losant == done


def test_an_execution_stored_by_an_earlier_version_is_read_and_not_claimed_again(
    store, syncs, text_redis
):
    done = execution(1, "completed", "2026-01-01T10:00:00Z")
    text_redis.hset(
        keys.execution(done["id"]),
        mapping={
            "application": APP,
            "notebook": NB,
            "status": "completed",
            "record": json.dumps(done),
        },
    )
    text_redis.set(keys.terminal_claim(done["id"]), "completed")
    assert store.get(done["id"]).losant == done
    assert store.upsert(APP, NB, [done], fence=fence(syncs)) == []  # claimed before
    assert store.get(done["id"]).losant == done
    assert "record" not in text_redis.hgetall(keys.execution(done["id"]))  # moved out


def test_a_stale_fence_writes_nothing(store, syncs):
    old = fence(syncs)
    syncs.redis.delete(keys.sync_lease(APP, NB))
    new = fence(syncs)
    assert new > old
    with pytest.raises(LeaseLost):
        store.upsert(APP, NB, [execution(1, "completed", "2026-01-01T10:00:00Z")], fence=old)
    assert store.get(f"{1:024x}") is None
    assert store.outbox(APP, NB) == []


def test_status_indexes_follow_the_last_status(store, syncs, text_redis):
    token = fence(syncs)
    store.upsert(APP, NB, [execution(1, "queued", "2026-01-01T10:00:00Z")], fence=token)
    store.upsert(APP, NB, [execution(1, "errored", "2026-01-01T10:00:00Z")], fence=token)
    counts = store.count_by_status()
    assert counts["queued"] == 0 and counts["errored"] == 1
    assert [r.id for r in store.query(statuses=["errored"]).items] == [f"{1:024x}"]
    assert store.query(statuses=["queued"]).items == []


def test_query_pages_newest_first_with_a_stable_cursor(store, syncs):
    token = fence(syncs)
    records = [execution(n, "completed", "2026-01-01T10:00:00Z") for n in range(1, 6)]
    records += [execution(n, "completed", f"2026-01-01T11:00:0{n}Z") for n in range(6, 9)]
    store.upsert(APP, NB, records, fence=token)
    seen, cursor = [], None
    while True:
        page = store.query(limit=3, cursor=cursor)
        seen += [r.id for r in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
        # a newer execution arriving meanwhile does not shift the pages
        store.upsert(
            APP, NB, [execution(50 + len(seen), "queued", "2026-01-02T00:00:00Z")], fence=token
        )
    expected = [f"{n:024x}" for n in (8, 7, 6)] + [f"{n:024x}" for n in (5, 4, 3, 2, 1)]
    assert seen == expected


def test_query_filters_by_notebook_status_and_time(store, syncs):
    store.upsert(
        APP,
        NB,
        [
            execution(1, "completed", "2026-01-01T10:00:00Z"),
            execution(2, "errored", "2026-01-02T10:00:00Z"),
            execution(3, "completed", "2026-01-03T10:00:00Z"),
        ],
        fence=fence(syncs),
    )
    store.upsert(
        APP,
        OTHER_NB,
        [execution(4, "completed", "2026-01-02T12:00:00Z", OTHER_NB)],
        fence=fence(syncs, OTHER_NB),
    )

    def ids(**filters):
        return [int(r.id, 16) for r in store.query(**filters).items]

    assert ids() == [3, 4, 2, 1]
    assert ids(application_id=APP, notebook_id=NB) == [3, 2, 1]
    assert ids(application_id=APP, notebook_id=NB, statuses=["completed"]) == [3, 1]
    assert ids(statuses=["completed", "errored"], limit=2) == [3, 4]
    day2 = 1767312000000  # 2026-01-02T00:00:00Z
    assert ids(since_ms=day2, until_ms=day2 + DAY * 1000) == [4, 2]


def test_a_foreign_cursor_is_refused(store):
    from service.events.store import InvalidCursor

    with pytest.raises(InvalidCursor):
        store.query(cursor="bm90IGEgY3Vyc29y")


def test_a_requested_run_is_pending_until_terminal(store, syncs):
    execution_id = f"{7:024x}"
    store.record_request(
        application_id=APP,
        notebook_id=NB,
        execution_id=execution_id,
        requested_by="cli:me@host",
        requested_at=1_767_225_600.0,  # 2026-01-01T00:00:00Z
        first_check_at=100.0,
        context={"a": 1, "nbrelay": {"run": "r1", "step": "report", "attempt": 2}},
        relative_to=1_767_225_000_000,
        notebook_name="report",
    )
    record = store.get(execution_id)
    assert record.status is None and record.losant is None
    assert record.pipeline_step.step_json() == {"run": "r1", "step": "report", "attempt": 2}
    view = record.as_json()
    assert view["nbrelay"]["requestedBy"] == "cli:me@host"
    assert view["nbrelay"]["requestContext"]["a"] == 1
    assert store.due_pending(now=100.0) == [(APP, NB, execution_id)]
    assert store.oldest_pending_ms(APP, NB) == 1_767_225_600_000
    assert store.notebook_names() == {keys.notebook_ref(APP, NB): "report"}

    done = execution(7, "completed", "2026-01-01T00:00:01Z", templateContext=json.dumps({"a": 1}))
    assert store.upsert(APP, NB, [done], fence=fence(syncs)) == [execution_id]
    assert store.due_pending(now=10**12) == []
    assert store.oldest_pending_ms(APP, NB) is None
    merged = store.get(execution_id)
    assert merged.meta["requested_by"] == "cli:me@host" and merged.status == "completed"
    assert merged.pipeline_step is None  # Losant's copy of the context wins


def record_hint(
    store: ExecutionStore,
    redis,
    notebook: str = NB,
    *,
    execution_id: str | None = None,
    message_id: str | None = None,
    event: dict | None = None,
) -> int:
    """One hint about `notebook` through `RECORD_HINT`; its result."""
    keys_, args = store.record_hint(
        APP,
        notebook,
        event or {"source": "test"},
        execution_id=execution_id,
        message_id=message_id,
        now=0,
    )
    return redis.eval(RECORD_HINT, len(keys_), *keys_, *args)


def test_callbacks_are_counted_only_for_known_executions(store, syncs, text_redis):
    store.upsert(APP, NB, [execution(1, "queued", "2026-01-01T10:00:00Z")], fence=fence(syncs))
    assert record_hint(store, text_redis, execution_id=f"{1:024x}") == 0
    assert record_hint(store, text_redis, execution_id=f"{1:024x}") == 0
    assert record_hint(store, text_redis, execution_id=f"{99:024x}") == 0
    assert store.get(f"{1:024x}").as_json()["nbrelay"]["callbacksReceived"] == 2
    assert not text_redis.exists(keys.execution(f"{99:024x}"))


def test_a_callback_counts_only_for_an_execution_of_its_own_notebook(store, syncs, text_redis):
    """A hint about notebook B that names an execution of notebook A (the body is the
    sender's to choose) must not count as A's callback: that would hide A's missing
    callback."""
    store.upsert(APP, NB, [execution(1, "completed", "2026-01-01T10:00:00Z")], fence=fence(syncs))
    record_hint(store, text_redis, OTHER_NB, execution_id=f"{1:024x}")
    meta = store.get(f"{1:024x}").as_json()["nbrelay"]
    assert meta["callbacksReceived"] == 0 and meta["lastCallbackAt"] is None
    record_hint(store, text_redis, NB, execution_id=f"{1:024x}")
    assert store.get(f"{1:024x}").as_json()["nbrelay"]["callbacksReceived"] == 1


def test_a_relay_message_is_remembered_with_its_hint_only(store, text_redis):
    assert record_hint(store, text_redis, message_id="msg_1") == 0
    assert record_hint(store, text_redis, message_id="msg_1") == -1
    assert text_redis.xlen(keys.events()) == 1
    assert 0 < text_redis.ttl(keys.webhook_seen("msg_1")) <= 2 * defaults.WEBHOOK_TOLERANCE


def test_a_notebooks_budget_bounds_what_is_recorded(store, text_redis):
    answers = [record_hint(store, text_redis) for _ in range(defaults.HINT_BURST + 5)]
    assert answers[: defaults.HINT_BURST] == [0] * defaults.HINT_BURST
    # what is left of the burst refills at HINT_RATE: at most a token or two came back
    throttled = answers[defaults.HINT_BURST :]
    assert sum(1 for a in throttled if a > 0) >= 3
    assert all(0 < a <= 1000 / defaults.HINT_RATE for a in throttled if a > 0)
    assert text_redis.xlen(keys.events()) == len([a for a in answers if a == 0])
    # another notebook has a budget of its own; each budget is one small key with a TTL
    assert record_hint(store, text_redis, OTHER_NB) == 0
    budget = keys.hint_budget(APP, NB)
    assert 0 < text_redis.pttl(budget) <= defaults.HINT_BURST * 1000 / defaults.HINT_RATE
    assert text_redis.memory_usage(budget) < 200


def test_the_event_stream_stays_within_its_byte_budget(store, text_redis):
    """Events as large as the sender can make them (body, content type, claimed status, run
    and step all at their limits), more of them than the stream keeps: the stream's memory
    stays within EVENT_STREAM_BYTES, and one entry within EVENT_ENTRY_BYTES."""
    run, step = "r" * 255, "s" * 255
    body = json.dumps({"execution": {"id": f"{1:024x}", "status": "\u00e9" * 10_000}})
    incoming = Incoming(
        "callback",
        APP,
        NB,
        body.encode() + b"\xff" * 300_000,
        "application/json; " + "x" * 10_000,
        parse_hint(body.encode()),
        run=run,
        step=step,
    )
    fields = incoming.event_fields(0)
    assert len(fields["body"].encode()) <= defaults.EVENT_BODY_KEEP
    assert len(fields["claimedStatus"].encode()) <= defaults.EVENT_TEXT_KEEP
    assert len(fields["contentType"].encode()) <= defaults.EVENT_TEXT_KEEP
    assert fields["truncated"] == "1"
    entries = defaults.EVENT_STREAM_MAXLEN + 3 * defaults.STREAM_NODE_ENTRIES
    batch = 1000
    for start in range(0, entries, batch):
        with text_redis.pipeline(transaction=False) as pipe:
            for n in range(start, min(entries, start + batch)):
                # each notebook's budget is untouched: every hint is recorded
                keys_, args = store.record_hint(
                    APP, f"{n:024x}", fields, execution_id=None, message_id=None, now=0
                )
                pipe.eval(RECORD_HINT, len(keys_), *keys_, *args)
            assert set(pipe.execute()) == {0}
    length = text_redis.xlen(keys.events())
    assert defaults.EVENT_STREAM_MAXLEN <= length
    assert length <= defaults.EVENT_STREAM_MAXLEN + defaults.STREAM_NODE_ENTRIES
    used = text_redis.memory_usage(keys.events(), samples=0)
    assert used <= defaults.EVENT_STREAM_BYTES, used
    assert used / length <= defaults.EVENT_ENTRY_BYTES, used / length


def test_every_key_has_a_ttl_within_retention(store, syncs, text_redis):
    store.record_request(
        application_id=APP,
        notebook_id=NB,
        execution_id=f"{2:024x}",
        requested_by="api",
        requested_at=1_767_225_600.0,
        first_check_at=0,
        notebook_name="nb",
    )
    store.upsert(APP, NB, [execution(1, "completed", "2026-01-01T10:00:00Z")], fence=fence(syncs))
    record_hint(store, text_redis, message_id="msg_1")
    store.finish_transitions(
        APP, NB, [ExecutionRecord(f"{1:024x}", APP, NB, {"status": "completed"})]
    )
    for key in text_redis.scan_iter("nbrelay:*"):
        if key == keys.sync_lease(APP, NB):
            continue
        ttl = text_redis.ttl(key)
        assert 0 < ttl <= 2 * DAY, (key, ttl)


def test_trim_drops_entries_older_than_retention(store, syncs, text_redis):
    now = 1_800_000_000.0
    old = now_iso(now - 3 * DAY)
    recent = now_iso(now - DAY)
    store.upsert(
        APP,
        NB,
        [execution(1, "completed", old), execution(2, "completed", recent)],
        fence=fence(syncs),
    )
    text_redis.xadd(keys.events(), {"source": "old"}, id=f"{int((now - 3 * DAY) * 1000)}-0")
    text_redis.xadd(keys.events(), {"source": "new"}, id=f"{int((now - DAY) * 1000)}-0")
    store.trim(now)
    assert [r.id for r in store.query().items] == [f"{2:024x}"]
    assert [r.id for r in store.query(application_id=APP, notebook_id=NB).items] == [f"{2:024x}"]
    assert store.count_by_status()["completed"] == 1
    assert [data["source"] for _, data in store.events()] == ["new"]
