"""Replaying dead letters: jobs that failed after their last retry.

A failed sync is replayed as a fresh sync request for its notebook, so it coalesces with any sync
already queued for it; any other job is put back on its queue as it was.
"""

from __future__ import annotations

from collections.abc import Iterable

from service.errors import UsageProblem
from service.events.ingress import Ingress
from service.queues import DeadLetter, Queues


class DeadLetters:
    def __init__(self, queues: Queues, ingress: Ingress) -> None:
        self.queues = queues
        self.ingress = ingress

    def all(self) -> list[DeadLetter]:
        """Jobs that failed for good, most recent failure first."""
        return self.queues.dead_letters()

    def replay(self, job_ids: Iterable[str] | None = None) -> list[str]:
        """Replay dead letters (all, or those named); returns the ids replayed. UsageProblem
        names the first id that is not a dead letter, before anything is replayed."""
        letters = {letter.job_id: letter for letter in self.queues.dead_letters()}
        wanted = list(letters) if job_ids is None else list(job_ids)
        unknown = [job_id for job_id in wanted if job_id not in letters]
        if unknown:
            raise UsageProblem(f"no dead letter with id {unknown[0]}")
        for job_id in wanted:
            letter = letters[job_id]
            if letter.application_id and letter.notebook_id:
                self.queues.discard(letter)
                self.ingress.resume_dead(letter.application_id, letter.notebook_id)
            else:
                self.queues.requeue(letter)
        return wanted
