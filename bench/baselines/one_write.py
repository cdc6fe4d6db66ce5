"""A third baseline of P1: the trivial endpoint plus one Redis write (an INCR) before the 202,
each gunicorn thread on its own connection. It is the least any receiver pays that, like
nbrelay, answers a callback only once it is recorded in Redis: the ceiling of P1 on this stack.

Settings from the environment: REDIS_URL.
"""

from __future__ import annotations

import os
import threading

from flask import Flask, request
from redis import Redis

COUNTER = "one-write:callbacks"

app = Flask(__name__)
_local = threading.local()


def _redis() -> Redis:
    connection = getattr(_local, "redis", None)
    if connection is None:
        connection = _local.redis = Redis.from_url(
            os.environ.get("REDIS_URL", "redis://"), single_connection_client=True
        )
    return connection


@app.post("/callbacks/<token>")
def receive(token: str):
    request.get_json(force=True, silent=True)
    _redis().incr(COUNTER)
    return {"accepted": True}, 202
