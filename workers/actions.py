"""RQ job: perform one follow-up action of the ledger (execute, retry, patch)."""

from __future__ import annotations

from workers.runtime import current


def perform(key: str) -> str:
    """Perform the action `key` once; a second delivery of the job finds it done and skips."""
    return current().followups.perform(key)
