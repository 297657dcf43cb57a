"""The lab's HTTP front: the synchronous path and the asynchronous one side by side.

    POST /predict      {"data": [[...4 numbers...], ...]}  -> 200 {"result": [class ids]}  (computed in the request)
    POST /tasks        {"data": [[...4 numbers...], ...], "delay": 0}  -> 202 {"task_id": "..."}
    GET  /tasks/<id>   -> 200 {"task_id": "...", "status": "PENDING|STARTED|SUCCESS|FAILURE|RETRY",
                               "result": [class ids] or null};  404 for an id this API never issued
    GET  /tasks/<id>?wait=<seconds>  the same, answered as soon as the task finishes (at most 20 s): no polling
    GET  /batch/last   -> 200 the last summary of the periodic score_batch task; 404 before its first run
    GET  /health       -> 200 {"status": "ok"} when the Redis store answers

Run it: gunicorn --bind 0.0.0.0:8000 "api:create_app()"
"""
from __future__ import annotations

import functools
import json
import uuid

import redis
from celery.states import READY_STATES
from flask import Flask, jsonify, request
from kombu.exceptions import OperationalError
from redis.backoff import NoBackoff
from redis.retry import Retry

from model import MAX_ROWS, predict_rows, validation_error
from publisher import configure_publisher, wait_for_result, wait_seconds
from tasks import REDIS_URL, predict
from tasks import app as celery_app

ISSUED_KEY = "api:issued"  # a Redis set of every task id this API has handed out


@functools.cache  # one client (and connection pool) per process
def store() -> redis.Redis:
    # No retries: a store that is down gives a quick 503 (redis-py's default retries 10 times).
    return redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=5, retry=Retry(NoBackoff(), 0))


def create_app(config: dict | None = None) -> Flask:
    """The Flask application: defaults, then test overrides."""
    app = Flask(__name__)
    app.config.update(MAX_CONTENT_LENGTH=1024 * 1024)
    app.config.update(config or {})
    configure_publisher(celery_app)  # fail fast when the broker or the store is down

    @app.post("/predict")
    def predict_now():
        """The synchronous path: the request waits while the model runs."""
        payload = request.get_json(silent=True)
        error = validation_error(payload)
        if error:
            return jsonify(error=error), 400
        if len(payload["data"]) > MAX_ROWS:
            return jsonify(error=f"at most {MAX_ROWS} rows per request"), 413
        return jsonify(result=predict_rows(payload["data"]))

    @app.post("/tasks")
    def submit():
        payload = request.get_json(silent=True)
        error = validation_error(payload)
        if error:
            return jsonify(error=error), 400
        if len(payload["data"]) > MAX_ROWS:
            return jsonify(error=f"at most {MAX_ROWS} rows per request"), 413
        task_id = str(uuid.uuid4())
        try:
            # Record the id first: a worker may finish before the client's first poll.
            store().sadd(ISSUED_KEY, task_id)
            predict.apply_async(args=[payload["data"]], kwargs={"delay": payload.get("delay", 0)},
                                task_id=task_id, retry=False)
        except (OperationalError, redis.RedisError, OSError) as failure:
            app.logger.warning("could not queue a task: %s", failure)
            return jsonify(error="the task queue is unavailable, try again later"), 503
        return jsonify(task_id=task_id), 202

    @app.get("/tasks/<task_id>")
    def status(task_id: str):
        try:
            if not store().sismember(ISSUED_KEY, task_id):
                return jsonify(error=f"no task with id {task_id}"), 404
            # The stored state, read directly: a client that polls gets it at once.
            meta = celery_app.backend.get_task_meta(task_id)
            wait = wait_seconds(request.args.get("wait"))
            if wait and meta["status"] not in READY_STATES:
                meta = wait_for_result(celery_app, task_id, wait)  # ?wait=<seconds>: answered when the result is stored
            state = meta["status"]
            # The lecture's task returns {"result": [...]}: hand out the list itself.
            result = meta["result"]["result"] if state == "SUCCESS" else None
        except (redis.RedisError, OSError) as failure:
            app.logger.warning("could not read task %s: %s", task_id, failure)
            return jsonify(error="the result store is unavailable, try again later"), 503
        return jsonify(task_id=task_id, status=state, result=result)

    @app.get("/batch/last")
    def batch_last():
        summary = store().get("batch:last")
        if summary is None:
            return jsonify(error="score_batch has not run yet"), 404
        return jsonify(json.loads(summary))

    @app.get("/health")
    def health():
        try:
            store().ping()
        except (redis.RedisError, OSError):
            return jsonify(status="the result store does not answer"), 503
        return jsonify(status="ok")

    @app.errorhandler(404)
    @app.errorhandler(405)
    @app.errorhandler(413)
    def http_error(error):
        return jsonify(error=error.description), error.code

    return app
