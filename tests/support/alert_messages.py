"""Alert messages as an errored execution produces them, for channel and message tests."""

from __future__ import annotations

from datetime import UTC, datetime

from service.followups.messages import AlertMessage, Event, FailureClass, execution_facts

ERRORED_EXECUTION = {
    "id": "65a0c0ffee0000000000e001",
    "notebookId": "65a0c0ffee0000000000b001",
    "status": "errored",
    "runQueuedAt": "2024-05-01T02:00:00.000Z",
    "notebookCompletedAt": "2024-05-01T02:03:10.000Z",
    "executionErrors": [
        {"name": "KeyError", "message": "'temperature' <column missing> & more"},
    ],
    "outputInfo": {
        "result.log": {"url": "https://files.example.com/runs/e001/result.log", "size": 10},
        "result.error.log": {"url": "https://files.example.com/runs/e001/result.error.log"},
    },
}


def firing_message(**changes) -> AlertMessage:
    values = {
        "id": "msg_0123456789abcdef",
        "event": Event.FIRING,
        "created_at": datetime(2024, 5, 1, 2, 4, tzinfo=UTC),
        "notebook_id": "65a0c0ffee0000000000b001",
        "notebook_name": "Nightly ETL",
        "failure_class": FailureClass.ERRORED,
        "consecutive_failures": 3,
        "last_success_at": datetime(2024, 4, 28, 2, 5, tzinfo=UTC),
        "last_success_execution_id": "65a0c0ffee0000000000e000",
        **execution_facts(ERRORED_EXECUTION),
    }
    values.update(changes)
    return AlertMessage(**values)
