"""RQ job: sync one notebook (see `service.events.sync`)."""

from __future__ import annotations

from rq import get_current_job

from workers.runtime import current


def sync(application_id: str, notebook_id: str) -> str:
    """Sync one notebook; a failure is final when RQ has no retry left for the job."""
    job = get_current_job()
    job_id = job.id if job is not None else f"inline-{application_id}-{notebook_id}"
    final = job is None or not job.retries_left
    return current().sync.run(application_id, notebook_id, job_id=job_id, final_attempt=final)
