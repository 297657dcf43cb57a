"""The HTTP front of the asynchronous service: submit a prediction, get a task id, poll for it.

    POST /tasks        {"data": [[...4 numbers...], ...], "delay": 0}  -> 202 {"task_id": "..."}
    GET  /tasks/<id>   -> 200 {"task_id": "...", "status": "PENDING|STARTED|SUCCESS|FAILURE|RETRY",
                               "result": [class ids] or null};  404 for an id this API never issued
    GET  /tasks/<id>?wait=<seconds>  the same, answered as soon as the task finishes (at most 20 s): no polling
    GET  /batch/last   -> 200 the last summary of the periodic score_batch task; 404 before its first run
    GET  /health       -> 200 {"status": "ok"} when the Redis store answers
    GET  /openapi.json -> this API's OpenAPI description, made from the models that validate (schema.py)

Run it: gunicorn --bind 0.0.0.0:8000 "api:create_app()"
"""
from __future__ import annotations

import json
import uuid

import redis
from celery.states import READY_STATES
from flask import Flask, jsonify, request
from kombu.exceptions import OperationalError

from model import MAX_ROWS, validation_error
from publisher import configure_publisher, wait_for_result, wait_seconds
from schema import description
from tasks import app as celery_app
from tasks import predict, store

ISSUED_KEY = "api:issued"  # a Redis set of every task id this API has handed out


def create_app(config: dict | None = None) -> Flask:
    """The Flask application: defaults, then test overrides."""
    app = Flask(__name__)
    app.config.update(MAX_CONTENT_LENGTH=1024 * 1024)
    app.config.update(config or {})
    configure_publisher(celery_app)  # fail fast when the broker or the store is down

    @app.post("/tasks")
    def submit():
        payload = request.get_json(silent=True)
        # TODO: validate the payload with validation_error() -> 400 {"error": ...} before anything is queued;
        # TODO: more than MAX_ROWS rows -> 413. Then queue predict with args [data] and kwargs {"delay": ...}
        # TODO: (apply_async(..., retry=False), so a dead broker fails fast) and record the task id in the
        # TODO: Redis set ISSUED_KEY (store().sadd). Broker or store unreachable -> 503 {"error": ...}.
        # TODO: Answer 202 {"task_id": "..."}.
        raise NotImplementedError("TODO: see the comment above")

    @app.get("/tasks/<task_id>")
    def status(task_id: str):
        # TODO: 404 {"error": ...} when task_id is not in the Redis set ISSUED_KEY (Celery itself would say
        # TODO: PENDING for any id, even a made-up one). Otherwise read celery_app.backend.get_task_meta(task_id)
        # TODO: and answer 200 {"task_id", "status": its state, "result": the result when SUCCESS, else null}.
        # TODO: Redis unreachable -> 503.
        # TODO: Optional (not graded): with ?wait=<seconds> (wait_seconds(request.args.get("wait"))), a task
        # TODO: not yet in READY_STATES is waited for with wait_for_result(celery_app, task_id, seconds): no polling.
        raise NotImplementedError("TODO: see the comment above")

    @app.get("/batch/last")
    def batch_last():
        # TODO: answer 200 with the JSON stored under batch:last, or 404 {"error": ...} before the first run.
        raise NotImplementedError("TODO: see the comment above")

    @app.get("/health")
    def health():
        try:
            store().ping()
        except (redis.RedisError, OSError):
            return jsonify(status="the result store does not answer"), 503
        return jsonify(status="ok")

    @app.get("/openapi.json")
    def openapi():
        return jsonify(description())

    @app.errorhandler(404)
    @app.errorhandler(405)
    @app.errorhandler(413)
    def http_error(error):
        return jsonify(error=error.description), error.code

    return app
