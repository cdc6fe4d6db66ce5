"""Client of the Losant Notebooks REST API: `LosantClient`, its models and its errors."""

from service.losant.client import LosantClient, epoch_ms, repeatable
from service.losant.errors import (
    AmbiguousNotebook,
    BadRequest,
    InvalidResponse,
    LosantError,
    NotFound,
    OutcomeUnknown,
    RateLimited,
    Unauthorized,
    Unavailable,
)
from service.losant.models import (
    TERMINAL_STATUSES,
    Execution,
    ExecutionError,
    ExecutionQueued,
    JobEnqueued,
    MinuteCount,
    MinuteCounts,
    Notebook,
    NotebookPage,
    NotebookStats,
)

__all__ = [
    "TERMINAL_STATUSES",
    "AmbiguousNotebook",
    "BadRequest",
    "Execution",
    "ExecutionError",
    "ExecutionQueued",
    "InvalidResponse",
    "JobEnqueued",
    "LosantClient",
    "LosantError",
    "MinuteCount",
    "MinuteCounts",
    "NotFound",
    "Notebook",
    "NotebookPage",
    "NotebookStats",
    "OutcomeUnknown",
    "RateLimited",
    "Unauthorized",
    "Unavailable",
    "epoch_ms",
    "repeatable",
]
