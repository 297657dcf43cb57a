"""The iris classifier and the validation of its input (the same model and rules as lab 01)."""
import math

from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

# max_iter=1000: at the default 100 iterations lbfgs stops before converging on iris.
_model = LogisticRegression(random_state=0, max_iter=1000).fit(*load_iris(return_X_y=True))


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


def predict(rows: list[list[float]]) -> list[int]:
    # tolist(): numpy integers are not JSON serialisable, Python ints are.
    return _model.predict(rows).tolist()
