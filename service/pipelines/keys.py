"""Every Redis key of pipelines, actions and alerts, each built by one function."""

from __future__ import annotations

PREFIX = "nbrelay"


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


def deliveries_failed() -> str:
    """List of notifications that failed for good (newest first, capped)."""
    return f"{PREFIX}:deliveries:failed"


def notebook_history(notebook_id: str) -> str:
    """Hash of a notebook's failure streak and last success."""
    return f"{PREFIX}:notebook-history:{notebook_id}"


def notebook_history_seen(notebook_id: str) -> str:
    """Sorted set of the executions already counted in a notebook's history."""
    return f"{PREFIX}:notebook-history-seen:{notebook_id}"


def pipeline_file() -> str:
    """The pipeline file in force (hash: text, digest, source, loaded_at)."""
    return f"{PREFIX}:pipelines:current"


def active_runs() -> str:
    """Sorted set of the runs that still have a step to finish, by start time."""
    return f"{PREFIX}:runs:active"
