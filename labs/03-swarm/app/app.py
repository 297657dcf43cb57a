"""The iris service for the swarm lab (given): every answer says which replica and which version served it."""
import math
import os
import socket

from flask import Flask, jsonify, request
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

# max_iter=1000: at the default 100 iterations lbfgs stops before converging on iris.
model = LogisticRegression(random_state=0, max_iter=1000).fit(*load_iris(return_X_y=True))
MAX_ROWS = 1000
VERSION = os.environ.get("APP_VERSION", "1")
# A version built with APP_HEALTHY=false fails its health check: the lab's "bad release".
HEALTHY = os.environ.get("APP_HEALTHY", "true") == "true"
REPLICA = socket.gethostname()

app = Flask(__name__)
app.config["MAX_CONTENT_LENGTH"] = 1024 * 1024


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def validation_error(payload) -> str | None:
    """Why `payload` is not {"data": [[4 numbers], ...]}, or None when it is."""
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
    # tolist(): numpy integers are not JSON serialisable, Python ints are.
    return jsonify(result=model.predict(payload["data"]).tolist())


@app.get("/health")
def health():
    if not HEALTHY:
        return jsonify(status="unhealthy", version=VERSION), 503
    return jsonify(status="ok", version=VERSION)


@app.after_request
def tell_who_served(response):
    response.headers["X-Replica"] = REPLICA
    response.headers["X-Version"] = VERSION
    return response


@app.errorhandler(404)
@app.errorhandler(405)
@app.errorhandler(413)
def http_error(error):
    return jsonify(error=error.description), error.code
