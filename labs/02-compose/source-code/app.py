"""The lecture's "application": the iris service, now with a database. Every prediction increments a
counter in Redis, so all containers of the service share one count, and it survives their restarts.

GET /stats answers the count and which container served the request (its host name), which shows
`docker compose up --scale` at work. Configuration: REDIS_URL, from the compose file's environment.
"""
import math
import os
import socket

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from flask import Flask, jsonify, request
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

# max_iter=1000: at the default 100 iterations lbfgs stops before converging on iris.
model = LogisticRegression(random_state=0, max_iter=1000).fit(*load_iris(return_X_y=True))
MAX_ROWS = 1000
# The default works on a laptop with a local Redis; in Compose, "database" is the service's DNS name.
# Short time-outs, no retries (redis-py retries 10 times by default): a missing database answers fast.
database = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://localhost:6379/0"),
                                socket_timeout=2, socket_connect_timeout=2, retry=Retry(NoBackoff(), 0))

app = Flask(__name__)
app.config["MAX_CONTENT_LENGTH"] = 1024 * 1024


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def validation_error(payload) -> str | None:
    if not isinstance(payload, dict) or "data" not in payload:
        return 'expected a JSON object with a "data" key'
    rows = payload["data"]
    if not isinstance(rows, list) or not rows:
        return '"data" must be a non-empty list of rows'
    for number, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != 4 or not all(map(is_number, row)):
            return f"row {number} must be a list of 4 finite numbers"
    return None


@app.post("/predict")
def predict():
    payload = request.get_json(silent=True)
    error = validation_error(payload)
    if error:
        return jsonify(error=error), 400
    if len(payload["data"]) > MAX_ROWS:
        return jsonify(error=f"at most {MAX_ROWS} rows per request"), 413
    result = model.predict(payload["data"]).tolist()
    database.incrby("predictions", len(result))
    return jsonify(result=result)


@app.get("/stats")
def stats():
    return jsonify(predictions=int(database.get("predictions") or 0), served_by=socket.gethostname())


@app.get("/health")
def health():
    database.ping()  # healthy only when the database answers
    return jsonify(status="ok")


@app.errorhandler(redis.RedisError)
def database_down(error):
    return jsonify(error=f"the database is unavailable: {type(error).__name__}"), 503


@app.errorhandler(404)
@app.errorhandler(405)
@app.errorhandler(413)
def http_error(error):
    return jsonify(error=error.description), error.code
