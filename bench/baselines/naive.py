"""The naive baseline of P1 and P2, what most tutorials build: every callback enqueues one RQ
job, and every job reads the notebook's `/logs` from Losant (here the sandbox) and keeps the
newest execution. No coalescing: one read per callback.

The token in the URL is just the notebook's id. Settings from the environment: REDIS_URL,
LOSANT_API_URL, LOSANT_API_TOKEN, LOSANT_APPLICATION_ID. Its worker: `WORKER` (RQ's default
worker on `QUEUE`, which forks for each job, with this module imported once beforehand so that
a job does not pay for importing Flask).
"""

from __future__ import annotations

import json
import os

import requests
from flask import Flask, request
from redis import Redis
from rq import Queue, Worker

QUEUE = "naive-callbacks"
LATEST = "naive:latest"  # hash: notebook id -> the newest execution, as JSON
WORKER = ("-c", "from bench.baselines.naive import work; work()")  # python arguments

app = Flask(__name__)
queue = Queue(QUEUE, connection=Redis.from_url(os.environ.get("REDIS_URL", "redis://")))


@app.post("/callbacks/<notebook_id>")
def receive(notebook_id: str):
    request.get_json(force=True, silent=True)
    queue.enqueue(read_logs, notebook_id)
    return {"accepted": True}, 202


def read_logs(notebook_id: str) -> None:
    """The job: one `/logs` read of the notebook, its newest execution kept in Redis."""
    application_id = os.environ["LOSANT_APPLICATION_ID"]
    response = requests.get(
        f"{os.environ['LOSANT_API_URL']}/applications/{application_id}/notebooks/"
        f"{notebook_id}/logs",
        params={"limit": 1},
        headers={"Authorization": f"Bearer {os.environ['LOSANT_API_TOKEN']}"},
        timeout=10,
    )
    response.raise_for_status()
    executions = response.json()
    if executions:
        Redis.from_url(os.environ["REDIS_URL"]).hset(LATEST, notebook_id, json.dumps(executions[0]))


def work() -> None:
    """The worker: RQ's default one, on `QUEUE`."""
    Worker([QUEUE], connection=Redis.from_url(os.environ["REDIS_URL"])).work()
