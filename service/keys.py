"""Every Redis key nbrelay writes, and every identity built from ids, in one place.

Keys share the `nbrelay:` prefix (RQ keeps its own `rq:` keys). Whatever belongs to a notebook
is named by its application and notebook ids together, because ids are only unique within a Losant
application. Execution ids, run ids and action keys are unique on their own.

The second half of the module builds the identities that make effects happen once: the
idempotency keys of follow-up actions (claimed in the action ledger), alert ids and sync job ids.
Each is deterministic, so that whoever decides on the same thing again arrives at the same key.
"""

from __future__ import annotations

PREFIX = "nbrelay"


def notebook_ref(application_id: str, notebook_id: str) -> str:
    """The member that names a notebook in sets and sorted sets: `<application>:<notebook>`."""
    return f"{application_id}:{notebook_id}"


def split_notebook_ref(ref: str) -> tuple[str, str]:
    application_id, _, notebook_id = ref.partition(":")
    return application_id, notebook_id


# executions


def execution(execution_id: str) -> str:
    """Hash: nbrelay's metadata of one execution, every value short, so that Redis keeps it in
    its compact encoding (an earlier version kept Losant's record here too, field `record`)."""
    return f"{PREFIX}:execution:{execution_id}"


def execution_record(execution_id: str) -> str:
    """String: Losant's record of one execution, as JSON."""
    return f"{PREFIX}:execution-record:{execution_id}"


def executions_by_time() -> str:
    """Sorted set: every execution id, scored by its queue time (ms since epoch)."""
    return f"{PREFIX}:executions:by-time"


def executions_by_notebook(application_id: str, notebook_id: str) -> str:
    """Sorted set: one notebook's execution ids, scored by queue time."""
    return f"{PREFIX}:executions:by-notebook:{application_id}:{notebook_id}"


def executions_by_status(status: str) -> str:
    """Sorted set: ids of executions whose last known status is `status`, scored by queue time."""
    return f"{PREFIX}:executions:by-status:{status}"


def notebooks() -> str:
    """Sorted set: every notebook nbrelay has heard of (`notebook_ref`), scored by last activity."""
    return f"{PREFIX}:notebooks"


def notebook_names() -> str:
    """Hash: notebook_ref -> the notebook's name, as last seen through the API."""
    return f"{PREFIX}:notebook-names"


def notebook_minutes(application_id: str, notebook_id: str) -> str:
    """String with a TTL: a notebook's minutes used this month as Losant's
    `notebookMinuteCounts` last told them (JSON `{"month": "YYYY-MM", "minutes": n or null}`),
    so that pages listing every notebook do not ask Losant on each view."""
    return f"{PREFIX}:notebook-minutes:{application_id}:{notebook_id}"


def minutes_unavailable() -> str:
    """String with a TTL: set when Losant could not be reached for minute counts; until it
    expires nobody asks again."""
    return f"{PREFIX}:notebook-minutes-unavailable"


# transitions


def terminal_claim(execution_id: str) -> str:
    """String an earlier version set once (NX) when an execution was first seen terminal: the
    transition's claim, now the `claimed` field of the execution's hash. Still honoured."""
    return f"{PREFIX}:transition:{execution_id}"


def transition_outbox(application_id: str, notebook_id: str) -> str:
    """Sorted set: claimed transitions of a notebook not yet handed to `on_terminal`."""
    return f"{PREFIX}:transitions:outbox:{application_id}:{notebook_id}"


def transitions() -> str:
    """Stream: every terminal transition, in the order they were handled (capped)."""
    return f"{PREFIX}:transitions"


# ingress


def events() -> str:
    """Stream: the raw event of every accepted callback and relay request (capped)."""
    return f"{PREFIX}:events"


def webhook_seen(message_id: str) -> str:
    """String: a Standard Webhooks message id already accepted (replays are ignored)."""
    return f"{PREFIX}:webhook-seen:{message_id}"


def hint_budget(application_id: str, notebook_id: str) -> str:
    """Hash with a TTL: a notebook's token bucket (`tokens`, `at` ms), which bounds how many of
    its hints the event stream records."""
    return f"{PREFIX}:hint-budget:{application_id}:{notebook_id}"


# syncs


def sync_state(application_id: str, notebook_id: str) -> str:
    """Hash: a notebook's sync bookkeeping (wanted generation, active job, fence, cursor...)."""
    return f"{PREFIX}:sync:{application_id}:{notebook_id}"


def sync_lease(application_id: str, notebook_id: str) -> str:
    """String with a TTL: the fencing token of the sync that currently holds the notebook."""
    return f"{PREFIX}:sync-lease:{application_id}:{notebook_id}"


def due_syncs() -> str:
    """Sorted set: notebooks whose next sync waits for more hints (`notebook_ref`), scored by
    when it is due anyway."""
    return f"{PREFIX}:sync-due"


def dirty_notebooks() -> str:
    """Sorted set: notebooks that need a sync (`notebook_ref`), scored by when they became dirty."""
    return f"{PREFIX}:dirty"


def logs_limit_cap(application_id: str) -> str:
    """String with a TTL: the largest `limit` Losant's `/logs` served an application's syncs,
    as discovered by a 400 naming it or by a page cut short (`service.events.logs_limit`)."""
    return f"{PREFIX}:logs-cap:{application_id}"


def start_lock(application_id: str, notebook_id: str) -> str:
    """String with a TTL: the lock one start of a notebook holds while it checks the notebook's
    pending runs against the `/logs` cap, executes and records the run
    (`service.events.starter`)."""
    return f"{PREFIX}:start-lock:{application_id}:{notebook_id}"


def unseen_executions(application_id: str, notebook_id: str) -> str:
    """Hash with a TTL: how many executions of a notebook syncs may not have seen, because
    `/logs` served a full page at its cap that did not reach back to the cursor; by the cursor
    (ms) of each such gap."""
    return f"{PREFIX}:unseen:{application_id}:{notebook_id}"


def unseen_notebooks() -> str:
    """Sorted set with a TTL: the notebooks (`notebook_ref`) with such a count, by the time of
    their last warning (ms)."""
    return f"{PREFIX}:unseen-notebooks"


def pending_by_notebook(application_id: str, notebook_id: str) -> str:
    """Sorted set: executions nbrelay started on a notebook that are not terminal yet,
    scored by the time they were requested (ms)."""
    return f"{PREFIX}:pending:{application_id}:{notebook_id}"


def pending_checks() -> str:
    """Sorted set: `<application>:<notebook>:<execution>` of every pending execution, scored by
    when the reconciler should next look at it (s since epoch)."""
    return f"{PREFIX}:pending-checks"


def pending_member(application_id: str, notebook_id: str, execution_id: str) -> str:
    return f"{application_id}:{notebook_id}:{execution_id}"


def split_pending_member(member: str) -> tuple[str, str, str]:
    application_id, notebook_id, execution_id = member.split(":", 2)
    return application_id, notebook_id, execution_id


def sync_job_prefix(application_id: str, notebook_id: str, now: float) -> str:
    """The start of a notebook's sync job ids, `sync-<app>-<notebook>-<start ms>-`; the sync
    state appends a counter."""
    return f"sync-{application_id}-{notebook_id}-{int(now * 1000)}-"


# scheduler


def scheduler_leader() -> str:
    """String with a TTL: the id of the scheduler process that currently does the work."""
    return f"{PREFIX}:scheduler-leader"


# nbrelay doctor


def doctor_probe(nonce: str) -> str:
    """String with a TTL: a probe of `nbrelay doctor` that arrived through NBRELAY_PUBLIC_URL."""
    return f"{PREFIX}:doctor-probe:{nonce}"


# Pipelines, follow-up actions and alerts


def action(key: str) -> str:
    """The record (claim, spec, outcome) of one follow-up action."""
    return f"{PREFIX}:action:{key}"


def actions_due() -> str:
    """Sorted set of action keys by the time someone must look at them next."""
    return f"{PREFIX}:actions:due"


def actions_by_time() -> str:
    """Sorted set of every action key by the time it was opened."""
    return f"{PREFIX}:actions:by-time"


def run(run_id: str) -> str:
    """One pipeline run (JSON)."""
    return f"{PREFIX}:run:{run_id}"


def runs_of(pipeline: str) -> str:
    """Sorted set of a pipeline's run ids by start time."""
    return f"{PREFIX}:runs:{pipeline}"


def alert(alert_id: str) -> str:
    """The state of one alert (JSON)."""
    return f"{PREFIX}:alert:{alert_id}"


def alerts() -> str:
    """Set of the ids of every alert that has a state."""
    return f"{PREFIX}:alerts"


def alerts_due() -> str:
    """Sorted set of alert ids by the time their next notification is due."""
    return f"{PREFIX}:alerts:due"


def overdue_handled() -> str:
    """Sorted set of the executions the overdue pass has handled (found past their deadline
    and handed to the rules), by when (s): each is handled once."""
    return f"{PREFIX}:overdue:handled"


def alert_episode(alert_id: str, episode: int) -> str:
    """List of what happened in one episode of an alert (JSON events, oldest first, capped)."""
    return f"{PREFIX}:alert-episode:{alert_id}:{episode}"


def silence(silence_id: str) -> str:
    """One silence (JSON), kept until its end plus the retention."""
    return f"{PREFIX}:silence:{silence_id}"


def silences() -> str:
    """Sorted set of silence ids by the time their record expires."""
    return f"{PREFIX}:silences"


def deliveries_failed() -> str:
    """List of notifications that failed for good (newest first, capped)."""
    return f"{PREFIX}:deliveries:failed"


def notebook_history(application_id: str, notebook_id: str) -> str:
    """Hash of a notebook's failure streak and last success."""
    return f"{PREFIX}:notebook-history:{application_id}:{notebook_id}"


def notebook_history_seen(application_id: str, notebook_id: str) -> str:
    """Sorted set of the executions already counted in a notebook's history."""
    return f"{PREFIX}:notebook-history-seen:{application_id}:{notebook_id}"


def pipeline_file() -> str:
    """The pipeline file in force (hash: text, digest, source, loaded_at)."""
    return f"{PREFIX}:pipelines:current"


def pipeline_file_note(name: str) -> str:
    """String with a TTL: a problem with the pipeline file already reported (`rejected:<digest>`,
    `unreadable`), so that every process reports it once."""
    return f"{pipeline_file()}:{name}"


def active_runs() -> str:
    """Sorted set of the runs that still have a step to finish, by start time."""
    return f"{PREFIX}:runs:active"


def ended_session(session_id: str) -> str:
    """Marker with a TTL (the session's remaining lifetime): a dashboard session signed out of,
    by the digest of its CSRF token."""
    return f"{PREFIX}:dashboard:ended-session:{session_id}"


def sign_in_failures(client: str) -> str:
    """Counter with a TTL: failed dashboard sign-ins of one client address in the current
    window."""
    return f"{PREFIX}:dashboard:sign-in-failures:{client}"


# Identities of follow-ups: each decides, once, what may happen only once


def step_action(run_id: str, step: str, attempt: int) -> str:
    """The execute action of one attempt of a pipeline step."""
    return f"run:{run_id}:{step}:{attempt}"


def rule_action(rule: str, index: int, execution_id: str, trigger: str) -> str:
    """Action `index` of a rule, set off by one execution reaching `trigger`."""
    return f"rule:{rule}:{index}:{execution_id}:{trigger}"


def rule_condition(rule: str, execution_id: str, trigger: str) -> str:
    """The failed evaluation of a rule's `when:` for one execution (kept as a failed action)."""
    return f"rule:{rule}:when:{execution_id}:{trigger}"


def retry_action(execution_id: str, status: str) -> str:
    """The retry of one execution that ended `status`."""
    return f"retry:{execution_id}:{status}"


def undo_action(action_key: str) -> str:
    """The patch that sets back what the patch `action_key` changed."""
    return f"undo:{action_key}"


def completed_notice(action_key: str, channel: str) -> str:
    """One channel's message of a rule's notify action on a completed execution."""
    return f"{action_key}:{channel}"


def alert_id(application_id: str, notebook_id: str, failure_class: str) -> str:
    """An alert: one notebook failing one way (errored, timeout, canceled, missing_callback,
    overdue)."""
    return f"{application_id}:{notebook_id}:{failure_class}"


def alert_notice(alert_id: str, episode: int, number: int | None, channel: str) -> str:
    """Message `number` of an alert's episode (None: the resolved message) to one channel."""
    which = "resolved" if number is None else str(number)
    return f"notify:{alert_id}:{episode}:{which}:{channel}"


# Keys of earlier versions, read only by `service.migrations`


def legacy_notebook_history(notebook_id: str) -> str:
    """Before application ids: `notebook_history` keyed by the notebook id alone."""
    return f"{PREFIX}:notebook-history:{notebook_id}"


def legacy_notebook_history_seen(notebook_id: str) -> str:
    """Before application ids: `notebook_history_seen` keyed by the notebook id alone."""
    return f"{PREFIX}:notebook-history-seen:{notebook_id}"
