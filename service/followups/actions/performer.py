"""Performing the actions that act on Losant: executes (and retries) and patches. Each method does
one kind of action for one ledger lease and returns its outcome; `ActionFailed` means it will
never work (recorded, not retried), any `LosantError` but the permanent ones means "try again
later". Notifications are sent by `service.followups.alerts.sender`.

An attempt after the first one starts by finding out whether an earlier attempt already acted:
for an execution, Losant's `/logs` is searched for an execution carrying the action's marker
(pipeline run, step and attempt, or the action key) in its templateContext, with the action's
nonce (`service.marker`); for a patch, the notebook is read, and it is not patched again when
it already has the patch's values, or when the earlier attempt's worker died once it had begun
sending the PATCH and the fields have changed since (a newer change is not overwritten).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

from service import defaults
from service.events.logs_limit import LogsCaps
from service.followups.actions.dispatcher import ActionFailed
from service.followups.actions.ledger import ActionRecord, Lease, Ledger
from service.followups.pipeline_file.model import INPUT_FIELDS
from service.losant import LosantClient
from service.marker import Marker, read_marker

PATCHABLE = ("name", "description", "imageVersion", "inputs")


class Starter(Protocol):
    def __call__(
        self,
        notebook: str,
        *,
        requested_by: str,
        context: Mapping[str, Any] | None,
        relative_to: Any,
        marker: Marker | None,
    ) -> str:
        """Start an execution of `notebook` (id or name) with the user's `context` and nbrelay's
        `marker`; return its id."""


@dataclass
class Performer:
    """What performing actions on Losant needs."""

    ledger: Ledger
    losant: Callable[[], LosantClient]
    application_id: str
    start: Starter
    caps: LogsCaps

    def execute(self, lease: Lease) -> dict[str, Any]:
        spec = lease.record.spec
        if lease.attempt > 1:
            found = self.find_started(lease.record)
            if found is not None:
                return {"execution_id": found, "found_in_losant": True}
        execution_id = self.start(
            spec["notebook"],
            requested_by=spec.get("requested_by", "nbrelay"),
            context=spec.get("context") or None,
            relative_to=spec.get("relative_to"),
            marker=spec_marker(spec),
        )
        return {"execution_id": execution_id}

    def find_started(self, record: ActionRecord) -> str | None:
        """The execution an earlier attempt of this action started, if Losant knows of one; the
        id returned is recorded as the action's execution."""
        client = self.losant()
        notebook = client.find_notebook(self.application_id, record.spec["notebook"])
        # No `since`: Losant does not say which time of an execution it compares (queued,
        # started, ended), and under the latter two a run still queued, or still running, is
        # not listed after any `since`. Without it, `/logs` gives the newest executions whatever
        # their state, and the action's own is among them unless more than the limit came after.
        # At most the cap `/logs` is known to serve (`logs_limit`), which a 400 reveals.
        executions = self.caps.read(
            client, self.application_id, notebook.id, limit=defaults.ACTION_RECOVERY_LOGS_LIMIT
        ).executions
        # /logs lists the newest first. The oldest execution carrying the marker and the action's
        # nonce is the one this action started: the nonce is random and only ever sent by the
        # action, so a copy can only be made once the action's execution was there to see. An
        # action opened by an earlier version has no nonce: the oldest carrying its marker.
        for execution in reversed(executions):
            if _carries(read_marker(execution.template_context), record):
                return execution.id
        return None

    def patch(self, lease: Lease) -> dict[str, Any]:
        spec = lease.record.spec
        client = self.losant()
        notebook = client.find_notebook(self.application_id, spec["notebook"])
        current = notebook.model_dump(mode="json", by_alias=True, exclude_none=True)
        progress = lease.record.progress or {}
        before = progress.get("before")
        if before is None:
            before = {k: current[k] for k in PATCHABLE if k in current}
            self.ledger.checkpoint(lease, {"before": before})
        changes = dict(spec.get("set") or {})  # an undo sets `inputs` back whole, through `set`
        if spec.get("inputs"):
            changes["inputs"] = _patched_inputs(before.get("inputs") or [], spec["inputs"])
        applied = all(current.get(k) == v for k, v in changes.items())
        # The previous attempt's worker died (it recorded no end) after it began sending the
        # PATCH: if the fields have changed since the first attempt read them, whether by that
        # PATCH or by someone else, sending it again would overwrite a newer change.
        changed = (
            progress.get("sending")
            and _worker_died(lease.record)
            and any(current.get(k) != before.get(k) for k in changes)
        )
        if lease.attempt > 1 and (applied or changed):
            patched = current  # Losant gets no second PATCH
        else:
            self.ledger.checkpoint(lease, {"before": before, "sending": True})
            after = client.patch_notebook(self.application_id, notebook.id, changes)
            patched = after.model_dump(mode="json", by_alias=True, exclude_none=True)
        return {
            "notebook_id": notebook.id,
            "before": {k: before.get(k) for k in changes},
            "after": {k: patched.get(k) for k in changes},
        }


def spec_marker(spec: Mapping[str, Any]) -> Marker | None:
    """The marker an execute action's execution carries: its pipeline step (`pipeline`), or the
    rule's mark (`marker`), with the action's `nonce` (none in a spec of an earlier version)."""
    if spec.get("pipeline"):
        marker = Marker.from_json(spec["pipeline"])
    elif spec.get("marker"):
        marker = Marker.from_json(spec["marker"])
    else:
        return None
    nonce = spec.get("nonce")
    return replace(marker, nonce=nonce if isinstance(nonce, str) and nonce else None)


def _worker_died(record: ActionRecord) -> bool:
    """Whether the attempt before the current one ended without recording how (its worker
    died, or its lease ran out): an attempt that failed or was postponed is in the history."""
    previous = record.attempts - 1
    return previous >= 1 and not any(h.get("attempt") == previous for h in record.history)


def _carries(found: Marker | None, record: ActionRecord) -> bool:
    expected = spec_marker(record.spec)
    if found is None or expected is None or not expected.same_nonce(found):
        return False
    if expected.is_step:
        return (found.run, found.step, found.attempt) == (
            expected.run,
            expected.step,
            expected.attempt,
        )
    return found.action == record.key


def _patched_inputs(inputs: list[dict[str, Any]], changes: dict[str, dict[str, Any]]) -> list:
    """The notebook's inputs with the given fields set on the inputs named by file name."""
    by_name = {i.get("fileName"): i for i in inputs}
    missing = sorted(set(changes) - set(by_name))
    if missing:
        raise ActionFailed(f"the notebook has no input named {missing[0]!r}")
    for fields in changes.values():
        unknown = set(fields) - set(INPUT_FIELDS)
        if unknown:
            raise ActionFailed(f"input field {sorted(unknown)[0]!r} cannot be patched")
    return [{**i, **changes.get(i.get("fileName", ""), {})} for i in inputs]
