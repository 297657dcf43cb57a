"""The lecture's Celery worker, fixed so it runs (see week/errata.md):

- the lecture's `Celery('tasks', broker='redis://guest@localhost//')` names a broker only: without a
  result backend `request.ready()` raises "No result backend is configured". Both come from env vars;
- `list(predictions)` holds numpy integers, which JSON cannot serialise: `.tolist()` gives Python ints;
- LogisticRegression needs max_iter=1000 to converge on iris.

Worker:  celery -A tasks worker --loglevel=INFO
Beat:    celery -A tasks beat --loglevel=INFO --schedule /tmp/celerybeat-schedule
"""
from __future__ import annotations

import json
import os
import time

import numpy as np
import redis
from celery import Celery
from celery.schedules import crontab

from model import BATCH, MAX_DELAY, model, summarize

BROKER_URL = os.environ.get("BROKER_URL", "redis://localhost:6379/0")
RESULT_BACKEND = os.environ.get("RESULT_BACKEND", "redis://localhost:6379/1")
REDIS_URL = os.environ.get("REDIS_URL", RESULT_BACKEND)
# ACKS_LATE=0 turns the reliability settings off: the notebook shows what is lost then.
ACKS_LATE = os.environ.get("ACKS_LATE", "1") == "1"
VISIBILITY_TIMEOUT = int(os.environ.get("VISIBILITY_TIMEOUT", "3600"))
SCHEDULE_SECONDS = float(os.environ.get("SCHEDULE_SECONDS", "30"))

app = Celery("tasks", broker=BROKER_URL, backend=RESULT_BACKEND)
app.conf.update(
    # Acknowledge after the task ran, not when it was received: a worker dying mid-task leaves the
    # message unacknowledged, and the broker delivers it again (at-least-once delivery).
    task_acks_late=ACKS_LATE,
    # A killed pool process (OOM killer, kill -9): requeue the message instead of recording a failure.
    task_reject_on_worker_lost=ACKS_LATE,
    # Redis only: an unacknowledged message returns to the queue after this many seconds. Longer than
    # the slowest task, or that task runs twice.
    broker_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT},
    # One reserved message per process: nothing queues behind a slow task inside a worker.
    worker_prefetch_multiplier=1,
    task_track_started=True,  # a running task reports STARTED, not PENDING
    accept_content=["json"],
    broker_connection_retry_on_startup=True,
    timezone="UTC",
)


@app.task(name="tasks.predict")
def predict(request_data, delay=0.0):
    """The lecture's task; `delay` stands in for a slow model so a task can be caught in flight."""
    if delay:
        time.sleep(min(float(delay), MAX_DELAY))
    data = np.array(request_data)
    predictions = model.predict(data)
    return {"result": predictions.tolist()}


@app.task(name="tasks.score_batch")
def score_batch():
    """The periodic job: score the whole batch, publish a JSON summary under batch:last."""
    summary = summarize(model.predict(BATCH).tolist())
    client = redis.Redis.from_url(REDIS_URL)
    summary["run"] = client.incr("batch:runs")
    summary["finished_at"] = time.time()
    client.set("batch:last", json.dumps(summary))
    return summary


@app.on_after_configure.connect
def setup_periodic_tasks(sender, **kwargs):
    # The lecture's example: predict for a fixed request every Monday at 7:30 (UTC here).
    sender.add_periodic_task(crontab(hour=7, minute=30, day_of_week=1),
                             predict.s([[5.1, 3.5, 1.4, 0.2], [2.4, 0.1, 5.3, 4.2]]), name="monday-predict")
    # And one you can watch: the batch every SCHEDULE_SECONDS.
    sender.add_periodic_task(SCHEDULE_SECONDS, score_batch.s(), name="score-batch")
