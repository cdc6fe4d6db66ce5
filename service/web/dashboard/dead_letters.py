"""The dead letters page (`/dead-letters`): jobs that failed after their last retry, each with its
error, and the buttons that replay one or all of them."""

from __future__ import annotations

from flask import render_template, url_for

from service import keys
from service.web import dead_letters as dead_letters_api
from service.web.dashboard.blueprint import answer, bp
from service.web.errors import ApiError
from service.web.resources import get_components

NAMED_IN_NOTICE = 5  # replayed job ids listed in the notice; beyond, only their number


@bp.get("/dead-letters")
def dead_letters():
    components = get_components()
    return render_template(
        "dashboard/dead_letters.html",
        letters=components.dead_letters.all(),
        names=components.store.notebook_names(),
        ref=keys.notebook_ref,
    )


@bp.post("/dead-letters/<job_id>/replay")
def replay_dead_letter(job_id: str):
    """Replay one dead letter, as `POST /api/dead-letters/<job_id>/replay` does."""
    return _replay([job_id])


@bp.post("/dead-letters/replay")
def replay_dead_letters():
    """Replay every dead letter, as `POST /api/dead-letters/replay` without a body does."""
    return _replay(None)


def _replay(job_ids: list[str] | None):
    back = url_for("dashboard.dead_letters")
    try:
        replayed = dead_letters_api.replay(job_ids)
    except ApiError as exc:
        return answer(back, exc.message, error=True)
    if not replayed:
        return answer(back, "No dead letters to replay.")
    if len(replayed) > NAMED_IN_NOTICE:  # the notice travels in the URL: keep it short
        return answer(back, f"Replayed {len(replayed)} dead letters.")
    return answer(back, f"Replayed {len(replayed)}: {', '.join(replayed)}.")
