"""The Celery side of the service: the app, its configuration, and the tasks.

Run a worker:  celery -A tasks worker --loglevel=INFO
Run the beat:  celery -A tasks beat --loglevel=INFO --schedule /tmp/celerybeat-schedule
"""
from __future__ import annotations

import functools
import json
import os
import time

import redis
from celery import Celery
from redis.backoff import NoBackoff
from redis.retry import Retry

from model import BATCH, MAX_DELAY, predict_rows, summarize

# BEGIN SOLUTION
# TODO: read the configuration from environment variables, with defaults that work locally:
# TODO:   BROKER_URL (default redis://localhost:6379/0), RESULT_BACKEND (default redis://localhost:6379/1),
# TODO:   REDIS_URL (where batch:last and the API's record of task ids live; default: RESULT_BACKEND),
# TODO:   VISIBILITY_TIMEOUT (seconds, default 3600) and SCHEDULE_SECONDS (default 60).
# TODO: create `app = Celery("tasks", broker=..., backend=...)` and set, with a comment on each saying why:
# TODO:   task_acks_late=True, task_reject_on_worker_lost=True, worker_prefetch_multiplier=1,
# TODO:   broker_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT},
# TODO:   task_track_started=True (so a running task reports STARTED),
# TODO:   and a beat_schedule that runs "tasks.score_batch" every SCHEDULE_SECONDS.
BROKER_URL = os.environ.get("BROKER_URL", "redis://localhost:6379/0")
RESULT_BACKEND = os.environ.get("RESULT_BACKEND", "redis://localhost:6379/1")
REDIS_URL = os.environ.get("REDIS_URL", RESULT_BACKEND)
VISIBILITY_TIMEOUT = int(os.environ.get("VISIBILITY_TIMEOUT", "3600"))
SCHEDULE_SECONDS = float(os.environ.get("SCHEDULE_SECONDS", "60"))

app = Celery("tasks", broker=BROKER_URL, backend=RESULT_BACKEND)
app.conf.update(
    # Acknowledge a message only AFTER the task has run: a worker that dies mid-task leaves the
    # message unacknowledged, so the broker hands it out again (at-least-once delivery).
    task_acks_late=True,
    # When the pool process running a task is killed (OOM killer, segfault, kill -9), put the
    # message back in the queue instead of recording a WorkerLostError failure.
    task_reject_on_worker_lost=True,
    # Redis has no real acknowledgements: an unacknowledged message goes back to the queue when it
    # has not been acknowledged within this many seconds. It must exceed the longest task, or a
    # slow task runs twice; it bounds how long the work of a dead worker container waits.
    broker_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT},
    # Reserve one message per process at a time: nothing waits behind a slow task in a prefetch
    # buffer, and a dying worker holds (and delays) as little work as possible.
    worker_prefetch_multiplier=1,
    # Record STARTED when a worker begins a task, so pollers can tell "queued" from "running".
    task_track_started=True,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    result_expires=24 * 3600,
    broker_connection_retry_on_startup=True,  # a worker started before its broker waits for it
    timezone="UTC",
    beat_schedule={
        "score-batch": {"task": "tasks.score_batch", "schedule": SCHEDULE_SECONDS},
    },
)
# END SOLUTION


@functools.cache  # one client (and connection pool) per process
def store() -> redis.Redis:
    """The Redis that holds batch:last (and the API's record of issued task ids)."""
    # Fail fast and let the caller decide: the API answers 503 at once instead of retrying while
    # its client waits (redis-py retries 3 times by default).
    return redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=5, retry=Retry(NoBackoff(), 0))


@app.task(name="tasks.predict")
def predict(rows: list[list[float]], delay: float = 0.0) -> list[int]:
    """The class id of each row; waits `delay` seconds first (a stand-in for a slow model)."""
    # BEGIN SOLUTION
    # TODO: sleep `delay` seconds (at most MAX_DELAY), then return predict_rows(rows): a list of ints.
    if delay:
        time.sleep(min(float(delay), MAX_DELAY))
    return predict_rows(rows)
    # END SOLUTION


@app.task(name="tasks.score_batch")
def score_batch() -> dict:
    """The periodic job: score the whole batch and publish a JSON summary under batch:last."""
    # BEGIN SOLUTION
    # TODO: predict every row of BATCH, build summary = summarize(classes), then add
    # TODO:   "run": the new value of INCR batch:runs (counts the runs), and "finished_at": time.time();
    # TODO: SET batch:last to json.dumps(summary) in store(), and return the summary.
    summary = summarize(predict_rows(BATCH))
    client = store()
    summary["run"] = client.incr("batch:runs")
    summary["finished_at"] = time.time()
    client.set("batch:last", json.dumps(summary))
    return summary
    # END SOLUTION
