"""The iris classifier and input validation (given; do not edit).

Shared by the API (which validates before queueing) and the worker (which predicts). The rules of a
valid submission are the TaskRequest model of schema.py, which also makes the API's /openapi.json.
"""
from __future__ import annotations

from pydantic import ValidationError
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from schema import MAX_DELAY, MAX_ROWS, TaskRequest  # noqa: F401 - api.py imports MAX_ROWS from here

# max_iter=1000: at the default 100 iterations lbfgs stops before converging on iris.
_features, _labels = load_iris(return_X_y=True)
model = LogisticRegression(random_state=0, max_iter=1000).fit(_features, _labels)
# The "nightly batch" that score_batch scores: the 150 iris flowers.
BATCH = _features.tolist()


def validation_error(payload) -> str | None:
    """Why `payload` is not {"data": [[4 numbers], ...], "delay": seconds?} (a TaskRequest), or None when it is."""
    try:
        TaskRequest.model_validate(payload)
    except ValidationError as error:
        return explain(error.errors()[0])
    return None


def explain(error: dict) -> str:
    """pydantic's first error as one sentence a client can act on."""
    where = error["loc"]
    if not where or (where == ("data",) and error["type"] == "missing"):
        return 'expected a JSON object with a "data" key'
    if where == ("data",):
        return '"data" must be a non-empty list of rows'
    if where[0] == "data":
        return f"row {where[1]} must be a list of 4 finite numbers"
    return f'"delay" must be a number of seconds between 0 and {MAX_DELAY:g}'


def predict_rows(rows: list[list[float]]) -> list[int]:
    """Class ids for the rows; tolist() because numpy integers are not JSON serialisable."""
    return model.predict(rows).tolist()


def summarize(classes: list[int]) -> dict:
    """How many rows fell into each class, as JSON-friendly counts."""
    counts = {str(label): 0 for label in range(3)}
    for label in classes:
        counts[str(label)] += 1
    return {"rows": len(classes), "counts": counts}
