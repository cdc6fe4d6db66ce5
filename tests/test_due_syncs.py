"""The workers' thread that enqueues syncs whose wait for more hints is over."""

import time

from service import defaults
from service.events.due_syncs import DueSyncs
from service.queues import SYNC_QUEUE
from service.runtime.processes import wait_until


def test_a_waiting_sync_is_enqueued_once_its_spacing_passed(make_components, sandbox_app):
    components = make_components()
    notebook_id = sandbox_app.create_notebook()["id"]
    first = components.ingress.request_sync(sandbox_app.id, notebook_id, "test")
    claim = components.syncs.begin(sandbox_app.id, notebook_id, first, time.time())
    components.syncs.finish_round(claim, None, time.time())
    queue = components.queues.queue(SYNC_QUEUE)
    queue.empty()
    assert components.ingress.request_sync(sandbox_app.id, notebook_id, "test") is None
    waiting = components.syncs.status(sandbox_app.id, notebook_id).active
    assert queue.get_job_ids() == []

    due = DueSyncs(components.syncs, components.queues, interval=0.01).start()
    try:
        wait_until(lambda: queue.get_job_ids() == [waiting], defaults.SYNC_SPACING + 5, "release")
    finally:
        due.stop()
    assert components.syncs.release_due(time.time() + 60) == []
