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
from celery.backends.redis import RedisBackend
from celery.exceptions import TimeoutError as ResultTimeout
from celery.result import AsyncResult
from celery.states import READY_STATES
from flask import Flask, jsonify, request
from kombu.exceptions import OperationalError
from redis.backoff import NoBackoff
from redis.retry import Retry

from model import MAX_ROWS, predict_rows, validation_error
from tasks import REDIS_URL, predict
from tasks import app as celery_app

ISSUED_KEY = "api:issued"  # a Redis set of every task id this API has handed out
MAX_WAIT = 20.0  # seconds a GET /tasks/<id>?wait=<seconds> may hold its request


class PublishOnlyRedisBackend(RedisBackend):
    """Celery's Redis result backend, less one habit: publishing a task does not subscribe to its
    result message. Celery subscribes so that a later .get() cannot miss the result; this API never
    .get()s at publish time (GET ?wait= subscribes itself, then reads the stored state), so each of
    those subscriptions only piles up: a SUBSCRIBE per task, and a result message that Redis writes
    to a socket nobody reads, until Redis drops the connection for its full output buffer."""

    def on_task_call(self, producer, task_id):
        return None


def wait_seconds(value: str | None) -> float:
    """?wait=<seconds>: a number up to MAX_WAIT; anything else (absent, 0, junk) means "answer at once"."""
    try:
        seconds = float(value or 0)
    except ValueError:
        return 0.0
    return min(seconds, MAX_WAIT) if seconds > 0 else 0.0  # NaN > 0 is False


def wait_for_result(task_id: str, seconds: float) -> dict:
    """The task's stored state and result, after waiting up to `seconds` for it to finish.

    AsyncResult.get() subscribes to the result backend's message for this task (Redis pub/sub), so
    it returns the moment the worker stores the result: no polling, and no load while it waits."""
    try:
        AsyncResult(task_id, app=celery_app).get(timeout=seconds, propagate=False)
    except ResultTimeout:
        pass  # not finished yet: answer its current state
    return celery_app.backend.get_task_meta(task_id)


@functools.cache  # one client (and connection pool) per process
def store() -> redis.Redis:
    # No retries: a store that is down gives a quick 503 (redis-py's default retries 10 times).
    return redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=5, retry=Retry(NoBackoff(), 0))


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
    # redis:// results through PublishOnlyRedisBackend (set before the app first uses its backend).
    celery_app.loader.override_backends = {"redis": f"{__name__}:PublishOnlyRedisBackend"}

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
                meta = wait_for_result(task_id, wait)  # ?wait=<seconds>: answered when the result is stored
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
