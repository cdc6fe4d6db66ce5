"""The actions page (`/actions`): recent follow-up actions and what each did — a patch's fields
before and after (with an Undo button), the execution an execute or retry started, a
notification's channel and outcome — and the undo button's POST."""

from __future__ import annotations

from dataclasses import dataclass

from flask import render_template, request, url_for

from service import defaults, keys
from service.errors import UsageProblem
from service.followups.actions.ledger import ActionNotFound, ActionRecord, ActionState
from service.followups.facade import Followups
from service.followups.pipeline_file.model import ACTION_KINDS
from service.times import iso
from service.web.dashboard.blueprint import answer, bp
from service.web.dashboard.diffs import FieldDiff, field_diffs
from service.web.dashboard.executions import masked
from service.web.resources import get_components


@dataclass(frozen=True)
class ActionView:
    record: ActionRecord
    diffs: list[FieldDiff]  # a patch that was applied: each field it changed
    planned: list[str]  # a patch not applied yet: the fields it is to set
    undo: ActionRecord | None  # the action that set back what this patch changed, if any

    @property
    def undoable(self) -> bool:
        return self.undo is None and bool(self.diffs)


@bp.get("/actions")
def actions():
    followups = get_components().followups
    kind = request.args.get("kind")
    selected = kind if kind in ACTION_KINDS else None
    records = followups.actions(defaults.DASHBOARD_ROWS, selected)
    return render_template(
        "dashboard/actions.html",
        live=any(record.starting for record in records),
        views=[_view(followups, record) for record in records],
        kinds=ACTION_KINDS,
        selected=selected,
        when=when,
    )


@bp.post("/actions/<path:key>/undo")
def undo_action(key: str):
    """Set back what the patch `key` changed, as `POST /api/actions/<key>/undo` does."""
    back = url_for("dashboard.actions")
    try:
        undo = get_components().followups.undo_patch(key)
    except (ActionNotFound, UsageProblem) as exc:
        return answer(back, str(exc), error=True)
    return answer(back, f"Undo of {key} queued as {undo}.")


def _view(followups: Followups, record: ActionRecord) -> ActionView:
    if record.kind != "patch":
        return ActionView(record, [], [], None)
    outcome = record.outcome
    if record.state is not ActionState.DONE or not outcome:
        inputs = [f"inputs {name}" for name in record.spec.get("inputs") or {}]
        return ActionView(record, [], [*(record.spec.get("set") or {}), *inputs], None)
    diffs = field_diffs(masked(outcome.get("before") or {}), masked(outcome.get("after") or {}))
    return ActionView(record, diffs, [], followups.action(keys.undo_action(record.key)))


def when(moment: float | None) -> str:
    """A time of the ledger as the page shows it: ISO 8601 to the second, UTC."""
    return "" if moment is None else iso(moment)[:19].replace("T", " ")
