"""A real dead letter: a sync whose reads of Losant fail (the sandbox answers 500, which is not
retried within the job), run by a real RQ worker until RQ has no retry left for it."""

from __future__ import annotations

from service.composition import Components
from tests.support.sandbox import SandboxApp
from workers.runtime import run_worker

SETTINGS = {"NBRELAY_SYNC_RETRY_INTERVALS": "0"}  # one retry, at once: a dead letter in a burst


def make_dead_letter(components: Components, app: SandboxApp, name: str) -> str:
    """The job id of a failed sync of a new notebook `name`, left in the dead letters; the
    notebook's id is the job's `notebook_id`. The components' settings must include SETTINGS."""
    notebook_id = app.create_notebook(name)["id"]
    app.set_behaviour(notebook_id, serverErrors=1)
    job_id = components.ingress.request_sync(app.id, notebook_id, "test")
    assert job_id is not None
    run_worker(components.settings, burst=True)
    assert job_id in {d.job_id for d in components.dead_letters.all()}, "no dead letter"
    return job_id
