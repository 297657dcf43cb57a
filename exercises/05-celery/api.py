"""The HTTP front of the asynchronous service: submit a prediction, get a task id, poll for it.

    POST /tasks        {"data": [[...4 numbers...], ...], "delay": 0}  -> 202 {"task_id": "..."}
    GET  /tasks/<id>   -> 200 {"task_id": "...", "status": "PENDING|STARTED|SUCCESS|FAILURE|RETRY",
                               "result": [class ids] or null};  404 for an id this API never issued
    GET  /batch/last   -> 200 the last summary of the periodic score_batch task; 404 before its first run
    GET  /health       -> 200 {"status": "ok"} when the Redis store answers
    GET  /openapi.json -> this API's OpenAPI description, made from the models that validate (schema.py)

Run it: gunicorn --bind 0.0.0.0:8000 "api:create_app()"
"""
from __future__ import annotations

import json
import uuid

import redis
from flask import Flask, jsonify, request
from kombu.exceptions import OperationalError

from model import MAX_ROWS, validation_error
from schema import description
from tasks import app as celery_app
from tasks import predict, store

ISSUED_KEY = "api:issued"  # a Redis set of every task id this API has handed out


def create_app(config: dict | None = None) -> Flask:
    """The Flask application: defaults, then test overrides."""
    app = Flask(__name__)
    app.config.update(MAX_CONTENT_LENGTH=1024 * 1024)
    app.config.update(config or {})
    # The API only publishes: when the broker is down it must answer 503 at once, not retry for
    # seconds while the client waits (kombu otherwise retries the connection before giving up).
    celery_app.conf.broker_connection_timeout = 2
    celery_app.conf.broker_transport_options = {
        **celery_app.conf.broker_transport_options,
        "max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2,
    }
    # Reading results from Redis: fail fast when it is down (by default 20 reconnects, 1 s apart).
    celery_app.conf.redis_socket_connect_timeout = 2
    celery_app.conf.redis_socket_timeout = 5
    celery_app.conf.result_backend_transport_options = {
        "retry_policy": {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2},
    }

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
