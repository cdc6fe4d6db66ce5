"""The trivial baseline of P1: a Flask endpoint that parses a JSON body and answers 202, the
fastest anything behind `POST /callbacks/<token>` can be on the same gunicorn settings."""

from __future__ import annotations

from flask import Flask, request

app = Flask(__name__)


@app.post("/callbacks/<token>")
def receive(token: str):
    request.get_json(force=True, silent=True)
    return {"accepted": True}, 202
