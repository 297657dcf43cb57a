"""How an HTTP API talks to Celery: publish a task and fail fast, read its result without polling.

A given file: the same in labs/05-celery and solutions/05-celery (`labkit release` copies it to the
lab, and `labkit release --check` fails when the two differ).
"""
from __future__ import annotations

from celery import Celery
from celery.backends.redis import RedisBackend
from celery.exceptions import TimeoutError as ResultTimeout
from celery.result import AsyncResult

MAX_WAIT = 20.0  # seconds a GET /tasks/<id>?wait=<seconds> may hold its request
FAIL_FAST = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}


class PublishOnlyRedisBackend(RedisBackend):
    """Celery's Redis result backend, less one habit: publishing a task does not subscribe to its
    result message. Celery subscribes so that a later .get() cannot miss the result; an API never
    .get()s at publish time (wait_for_result subscribes itself, then reads the stored state), so each
    of those subscriptions only piles up: a SUBSCRIBE per task, and a result message that Redis writes
    to a socket nobody reads, until Redis drops the connection for its full output buffer."""

    def on_task_call(self, producer, task_id):
        return None


def configure_publisher(celery_app: Celery) -> None:
    """Settings for a process that only publishes tasks and reads results (call before first use)."""
    # When the broker is down the API must answer 503 at once, not retry for seconds while the
    # client waits (kombu otherwise retries the connection before giving up).
    celery_app.conf.broker_connection_timeout = 2
    celery_app.conf.broker_transport_options = {**celery_app.conf.broker_transport_options, **FAIL_FAST}
    # redis:// results through PublishOnlyRedisBackend (set before the app first uses its backend).
    celery_app.loader.override_backends = {"redis": f"{__name__}:PublishOnlyRedisBackend"}
    # Reading results from Redis: fail fast when it is down (by default 20 reconnects, 1 s apart).
    celery_app.conf.redis_socket_connect_timeout = 2
    celery_app.conf.redis_socket_timeout = 5
    celery_app.conf.result_backend_transport_options = {"retry_policy": FAIL_FAST}


def wait_seconds(value: str | None) -> float:
    """?wait=<seconds>: a number up to MAX_WAIT; anything else (absent, 0, junk) means "answer at once"."""
    try:
        seconds = float(value or 0)
    except ValueError:
        return 0.0
    return min(seconds, MAX_WAIT) if seconds > 0 else 0.0  # NaN > 0 is False


def wait_for_result(celery_app: Celery, task_id: str, seconds: float) -> dict:
    """The task's stored state and result, after waiting up to `seconds` for it to finish.

    AsyncResult.get() subscribes to the result backend's message for this task (Redis pub/sub), so
    it returns the moment the worker stores the result: no polling, and no load while it waits."""
    try:
        AsyncResult(task_id, app=celery_app).get(timeout=seconds, propagate=False)
    except ResultTimeout:
        pass  # not finished yet: answer its current state
    return celery_app.backend.get_task_meta(task_id)
