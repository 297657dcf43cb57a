"""The iris classifier and input validation (given; do not edit).

Shared by the API (which validates before queueing) and the worker (which predicts).
"""
from __future__ import annotations

import math

from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

MAX_ROWS = 1000
MAX_DELAY = 30.0  # seconds; `delay` simulates a slow model so a task can be caught in flight

# max_iter=1000: at the default 100 iterations lbfgs stops before converging on iris.
_features, _labels = load_iris(return_X_y=True)
model = LogisticRegression(random_state=0, max_iter=1000).fit(_features, _labels)
# The "nightly batch" that score_batch scores: the 150 iris flowers.
BATCH = _features.tolist()


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def validation_error(payload) -> str | None:
    """Why `payload` is not {"data": [[4 numbers], ...], "delay": seconds?}, or None when it is."""
    if not isinstance(payload, dict) or "data" not in payload:
        return 'expected a JSON object with a "data" key'
    rows = payload["data"]
    if not isinstance(rows, list) or not rows:
        return '"data" must be a non-empty list of rows'
    for number, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != 4 or not all(map(is_number, row)):
            return f"row {number} must be a list of 4 finite numbers"
    delay = payload.get("delay", 0)
    if not is_number(delay) or not 0 <= delay <= MAX_DELAY:
        return f'"delay" must be a number of seconds between 0 and {MAX_DELAY:g}'
    return None


def predict_rows(rows: list[list[float]]) -> list[int]:
    """Class ids for the rows; tolist() because numpy integers are not JSON serialisable."""
    return model.predict(rows).tolist()


def summarize(classes: list[int]) -> dict:
    """How many rows fell into each class, as JSON-friendly counts."""
    counts = {str(label): 0 for label in range(3)}
    for label in classes:
        counts[str(label)] += 1
    return {"rows": len(classes), "counts": counts}
