"""RQ job: deliver one notification of the ledger. Notifications have a queue of their own, so
a slow SMTP server or webhook never holds up pipeline steps."""

from __future__ import annotations

from workers.runtime import current


def deliver(key: str) -> str:
    """Send the notification `key` once, retrying transient failures within the job."""
    return current().followups.perform(key)
