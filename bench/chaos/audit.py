"""After the faults: wait until nbrelay has caught up (with a deadline), replaying dead letters
as they appear, then check what happened against the sandbox's own records (its database of
executions and its journal of patches) and what the receivers accepted.

Every check is a `Row`: a figure, and for the "musts" whether it holds.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import requests

from bench.chaos.balancer import CallbackAnswer
from bench.chaos.deployment import ChaosDeployment
from bench.chaos.faults import FaultLog
from bench.chaos.scenario import RETRY_ATTEMPTS, Behaviours
from bench.chaos.sinks import MailSink, WebhookSink
from sandbox import defaults as sandbox_defaults
from service import keys
from service.events.records import TERMINAL_STATUSES
from service.events.store import ExecutionStore
from service.followups.actions.ledger import ActionRecord
from service.followups.pipelines.runs import RunStatus, RunStore
from service.marker import Marker, read_marker, user_context
from service.queues import QUEUES

POLL = 2.0  # seconds between two looks while waiting for convergence
EVERYSEC_WINDOW = 2.0  # seconds before a Redis kill whose writes the AOF may not hold
TTL = 30 * 86400
EXAMPLES = 20  # failures named in the results, per row


@dataclass
class Row:
    group: str
    name: str
    value: Any
    must: bool | None = None  # None: a figure; else whether the "must" holds
    examples: list[str] = field(default_factory=list)  # what failed a must, to look into

    def to_json(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "name": self.name,
            "value": self.value,
            "ok": self.must,
            "examples": self.examples[:EXAMPLES],
        }


@dataclass(frozen=True)
class SandboxExecution:
    id: str
    notebook_id: str
    status: str
    marker: Marker | None
    context: Any


class Audit:
    def __init__(
        self,
        deployment: ChaosDeployment,
        behaviours: Behaviours,
        faults: FaultLog,
        run_ids: Iterable[str],
        sinks: dict[str, WebhookSink | MailSink],
    ) -> None:
        self.deployment = deployment
        self.behaviours = behaviours
        self.faults = faults
        self.run_ids = set(run_ids)
        self.sinks = sinks  # channel name -> its receiver
        self.names = {notebook_id: name for name, notebook_id in behaviours.ids.items()}
        self.redis = deployment.redis
        self.store = ExecutionStore(self.redis, ttl=TTL)
        self.runs = RunStore(self.redis, ttl=TTL)
        self.replayed: set[str] = set()  # dead letters replayed, by job id

    # convergence

    def converge(self, deadline: float) -> float | None:
        """Wait until nothing is left to do; the seconds it took (None: not by `deadline`)."""
        began = time.monotonic()
        while time.monotonic() < began + deadline:
            if self._dead_letters():
                self.replayed.update(self._api("POST", "/api/dead-letters/replay")["replayed"])
            elif self._settled():
                return time.monotonic() - began
            time.sleep(POLL)
        return None

    def _settled(self) -> bool:
        executions = self.sandbox_executions()
        if any(e.status not in TERMINAL_STATUSES for e in executions):
            return False
        records = {r.id: r for r in self.store.get_many(e.id for e in executions)}
        if any(records.get(e.id) is None or records[e.id].status != e.status for e in executions):
            return False
        if any(isinstance(run, dict) or run.status is RunStatus.RUNNING for run in self.all_runs()):
            return False
        if self.redis.zcard(keys.actions_due()) or self.redis.zcard(keys.due_syncs()):
            return False
        return all(self.redis.llen(f"rq:queue:{name}") == 0 for name in QUEUES)

    def _dead_letters(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self._api("GET", "/api/dead-letters")["items"]
        return items

    def _api(self, method: str, path: str) -> Any:
        response = requests.request(
            method,
            self.deployment.url + path,
            headers={"Authorization": f"Bearer {self.deployment.api_token}"},
            timeout=30,
        )
        response.raise_for_status()
        return response.json()

    # what happened

    def sandbox_executions(self) -> list[SandboxExecution]:
        database = self.deployment.sandbox_data / "sandbox.db"
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
            rows = connection.execute(
                "SELECT id, notebook_id, status, doc FROM executions WHERE application_id = ?",
                (self.deployment.application_id,),
            ).fetchall()
        found = []
        for execution_id, notebook_id, status, doc in rows:
            context = json.loads(doc).get("templateContext")
            found.append(
                SandboxExecution(
                    execution_id, notebook_id, status, read_marker(context), user_context(context)
                )
            )
        return found

    def all_runs(self) -> list[Any]:
        runs = {r.id: r for name in ("etl", "fanout") for r in self.runs.recent(name, 10**6)}
        missing = self.run_ids - set(runs)
        return [*runs.values(), *({"id": m} for m in missing)]  # a run id nbrelay lost

    def actions(self) -> list[ActionRecord]:
        found = []
        for batch in _batches(self.redis.scan_iter(keys.action("*"), count=1000), 500):
            found += [ActionRecord.from_json(raw) for raw in self.redis.mget(batch) if raw]
        return found

    def patches(self) -> Counter[str]:
        """How often the patch rule's target notebook was patched for each execution (its
        description names the execution). Raises when the sandbox's journal of patches is
        full: it forgot the oldest, and the counts would not hold."""
        stats = self.deployment.sandbox.stats(
            self.deployment.application_id, self.behaviours.ids["r-patch-target"]
        )
        journal = stats.get("patches", [])
        if len(journal) >= sandbox_defaults.STATS_PATCH_BODIES:
            raise RuntimeError("the sandbox's journal of patches is full: the soak is too long")
        counts: Counter[str] = Counter()
        for patch in journal:
            counts[str(patch["body"].get("description")).removeprefix("after ")] += patch["applied"]
        return counts

    # the checks

    def rows(self, converged_after: float | None, callbacks: list[CallbackAnswer]) -> list[Row]:
        executions = self.sandbox_executions()
        rows = self._execution_rows(executions)
        rows += self._followup_rows(executions)
        rows += self._run_rows()
        rows += self._alert_rows()
        rows += self._callback_rows(callbacks)
        rows.append(Row("dead letters", "replayed", len(self.replayed)))
        rows.append(Row("dead letters", "left after replay", len(self._dead_letters())))
        rows[-1].must = rows[-1].value == 0
        rows.append(
            Row(
                "convergence",
                "seconds after the last fault",
                None if converged_after is None else round(converged_after, 1),
                converged_after is not None,
            )
        )
        return rows

    def _execution_rows(self, executions: list[SandboxExecution]) -> list[Row]:
        records = {r.id: r for r in self.store.get_many(e.id for e in executions)}
        missing = [e for e in executions if e.id not in records]
        wrong = [e for e in executions if e.id in records and records[e.id].status != e.status]
        return [
            Row("executions", "started at the sandbox", len(executions)),
            Row(
                "executions",
                "stored with Losant's final status",
                len(executions) - len(missing) - len(wrong),
            ),
            Row(
                "executions",
                "lost (not stored)",
                len(missing),
                not missing,
                [f"{e.id} of {self.names.get(e.notebook_id)} ({e.status})" for e in missing],
            ),
            Row(
                "executions",
                "stored with another status",
                len(wrong),
                not wrong,
                [
                    f"{e.id} of {self.names.get(e.notebook_id)}: {e.status} at the sandbox, "
                    f"{records[e.id].status} stored"
                    for e in wrong
                ],
            ),
        ]

    def _followup_rows(self, executions: list[SandboxExecution]) -> list[Row]:
        ids = self.behaviours.ids
        by_step: Counter[tuple[str, str, int]] = Counter()
        by_action: Counter[str] = Counter()
        retries_of: Counter[str] = Counter()
        executes_for: Counter[str] = Counter()
        for e in executions:
            if e.marker is None:
                continue
            if e.marker.is_step:
                by_step[(e.marker.run or "", e.marker.step or "", e.marker.attempt_number)] += 1
            elif e.marker.action:
                by_action[e.marker.action] += 1
                if e.marker.retry_of:
                    retries_of[e.marker.retry_of] += 1
                elif e.notebook_id == ids["r-exec-target"] and isinstance(e.context, dict):
                    executes_for[str(e.context.get("source"))] += 1
        retried = [
            e.id
            for e in executions
            if e.notebook_id == ids["r-retry"]
            and e.status == "errored"
            and (e.marker.attempt_number if e.marker else 1) < RETRY_ATTEMPTS
        ]
        executed = [
            e.id
            for e in executions
            if e.notebook_id == ids["r-execute"] and e.status == "completed"
        ]
        patched = [
            e.id for e in executions if e.notebook_id == ids["r-patch"] and e.status == "completed"
        ]
        patches = self.patches()
        rows = [
            Row("follow-ups", "pipeline step executions", sum(by_step.values())),
            _doubled("follow-ups", "step executions doubled", by_step),
        ]
        unasked: list[str] = []
        for label, expected, performed in (
            ("retries", retried, retries_of),
            ("rule executes", executed, executes_for),
            ("patches", patched, patches),
        ):
            done = {i: performed[i] for i in expected}
            missing = [f"for {i}" for i, n in done.items() if n == 0]
            unasked += [f"{label} for {i}" for i in set(performed) - set(expected)]
            rows += [
                Row(
                    "follow-ups",
                    f"{label} expected / performed",
                    f"{len(expected)} / {len(expected) - len(missing)}",
                ),
                Row("follow-ups", f"{label} missing", len(missing), not missing, missing),
                _doubled("follow-ups", f"{label} doubled", done),
            ]
        rows.append(_doubled("follow-ups", "rule executions doubled (by action key)", by_action))
        rows.append(Row("follow-ups", "nobody asked for", len(unasked), not unasked, unasked))
        return rows

    def _run_rows(self) -> list[Row]:
        runs = self.all_runs()
        lost = [r for r in runs if isinstance(r, dict)]
        stuck = [r for r in runs if not isinstance(r, dict) and r.status is RunStatus.RUNNING]
        finished = Counter(r.status.value for r in runs if not isinstance(r, dict))
        return [
            Row("pipeline runs", "started", len(runs)),
            Row(
                "pipeline runs",
                "finished (completed / failed)",
                f"{finished['completed']} / {finished['failed']}",
            ),
            Row("pipeline runs", "stuck", len(stuck), not stuck),
            Row("pipeline runs", "accepted, then lost", len(lost), not lost),
        ]

    def _alert_rows(self) -> list[Row]:
        notices = [a for a in self.actions() if a.kind == "notify" and a.spec.get("alert")]
        openings: defaultdict[tuple[str, int, str], list[ActionRecord]] = defaultdict(list)
        for notice in notices:
            number = notice.key.split(":")[-2]
            if number == "1":
                spec = notice.spec
                openings[(spec["alert"], int(spec["episode"]), spec["channel"])].append(notice)
        copies = {
            channel: Counter(m.message_id for m in sink.messages())
            for channel, sink in self.sinks.items()
        }
        exact, mid_send = 0, 0
        undelivered: list[str] = []
        repeated: list[str] = []
        for (_, _, channel), opened in openings.items():
            count = copies[channel][opened[0].spec["message"]["id"]]
            about = f"{opened[0].key}: {count} copies, {opened[0].state} {opened[0].error or ''}"
            if len(opened) == 1 and count == 1:
                exact += 1
            elif count == 0:
                undelivered.append(about)
            elif count > 1 and _sender_died(opened[0]):
                mid_send += 1
            else:
                repeated.append(about)
        episodes = {(alert, episode) for alert, episode, _ in openings}
        resolved = sum(1 for n in notices if n.key.split(":")[-2] == "resolved")
        return [
            Row(
                "alerts", "alerts / episodes", f"{len({a for a, _ in episodes})} / {len(episodes)}"
            ),
            Row("alerts", "opening messages, exactly one per episode and channel", exact),
            Row(
                "alerts",
                "opening messages never delivered",
                len(undelivered),
                not undelivered,
                undelivered,
            ),
            Row("alerts", "opening messages repeated: sender died mid-send", mid_send),
            Row(
                "alerts",
                "opening messages repeated otherwise",
                len(repeated),
                not repeated,
                repeated,
            ),
            Row("alerts", "resolved messages", resolved),
            Row(
                "alerts",
                "deliveries refused by a failing receiver",
                sum(sink.refused for sink in self.sinks.values()),
            ),
        ]

    def _callback_rows(self, callbacks: list[CallbackAnswer]) -> list[Row]:
        windows = [
            (o.killed_at - EVERYSEC_WINDOW, o.answering_at or o.killed_at)
            for o in self.faults.redis_outages
        ]
        accepted = [c for c in callbacks if c.status == 202 and c.execution_id]
        in_window = [c for c in accepted if any(a <= c.at <= b for a, b in windows)]
        named = {c.execution_id for c in in_window if c.execution_id}
        records = {r.id: r for r in self.store.get_many(named)}
        traceless = [
            c
            for c in in_window
            if c.execution_id not in records
            or int(records[c.execution_id].meta.get("callbacks", 0)) == 0
        ]
        sandbox = {e.id: e.status for e in self.sandbox_executions()}
        unrecorded = [
            c
            for c in traceless
            if c.execution_id not in records
            or records[c.execution_id].status != sandbox.get(c.execution_id)
        ]
        return [
            Row("callbacks", "answered 202 (all)", len(accepted)),
            Row("callbacks", "answered 202 in a Redis kill window", len(in_window)),
            Row("callbacks", "… of which left no trace", len(traceless)),
            Row(
                "callbacks",
                "… whose execution is not recorded all the same",
                len(unrecorded),
                not unrecorded,
            ),
        ]


def _doubled(group: str, name: str, counts: Mapping[Any, int]) -> Row:
    doubled = [f"{key}: {n} times" for key, n in counts.items() if n > 1]
    return Row(group, name, len(doubled), not doubled, doubled)


def _sender_died(action: ActionRecord) -> bool:
    """Whether an attempt of the action ended without recording how: its worker died."""
    ended = {entry.get("attempt") for entry in action.history}
    return any(attempt not in ended for attempt in range(1, action.attempts + 1))


def _batches(items: Iterable[str], size: int) -> Iterable[list[str]]:
    batch: list[str] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
