"""The model, loaded once from the artifact that train.py wrote at image build time (given: do not edit).

`MODEL_DELAY_MS` makes a deliberately slow variant: each predict call also waits that long, as a
big model would. The same predictions, only slower; it shows when a cache pays.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import joblib
import numpy as np
import sklearn
from sklearn.linear_model import LogisticRegression

MODEL_FILE, META_FILE = "model.joblib", "model.json"
DEFAULT_DIR = Path(__file__).resolve().parent.parent / "model"


class ModelVersionError(RuntimeError):
    """The artifact was written by another scikit-learn version than the one installed."""


class Model:
    def __init__(self, estimator, meta: dict, delay_ms: float = 0.0) -> None:
        self.estimator = estimator
        self.meta = meta
        self.version: str = meta["version"]
        self.delay = max(float(delay_ms), 0.0) / 1000
        self.scores = linear_scores(estimator)

    def predict(self, rows: list[list[float]]) -> list[int]:
        """Class ids for rows of 4 numbers (rows are validated by the caller)."""
        if self.delay:
            time.sleep(self.delay)
        # float64 up front: the dtype the model was trained on, and one conversion for a big batch.
        features = np.asarray(rows, dtype=np.float64)
        # tolist(): numpy integers are not JSON serialisable, Python ints are.
        if self.scores is None:
            return self.estimator.predict(features).tolist()
        coef, intercept, classes = self.scores
        return classes[(features @ coef + intercept).argmax(axis=1)].tolist()


def linear_scores(estimator) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(coef.T, intercept, classes) of a multiclass LogisticRegression, whose predict is exactly
    classes[argmax(X @ coef.T + intercept)]; None for any other estimator (it uses its own predict).

    Why: sklearn's predict checks its input on every call (types, shape, finiteness, feature names),
    about 0.1 ms: for one row that is 40 times the arithmetic. The service validated the rows already,
    so it computes the same scores itself (week/lectures/04-sync-serving.md, "Where the time goes")."""
    if type(estimator) is not LogisticRegression or estimator.coef_.shape[0] == 1:  # 1: binary, thresholded
        return None
    scores = (np.ascontiguousarray(estimator.coef_.T), estimator.intercept_.copy(), estimator.classes_)
    # The same answers as predict, or no shortcut: checked on a grid around the iris ranges.
    grid = np.random.default_rng(0).uniform(-1.0, 9.0, size=(2000, estimator.coef_.shape[1]))
    coef, intercept, classes = scores
    if not np.array_equal(classes[(grid @ coef + intercept).argmax(axis=1)], estimator.predict(grid)):
        return None
    return scores


def load_model(directory: str | Path | None = None, delay_ms: float = 0.0) -> Model:
    """Load model.joblib + model.json from `directory` (default: ./model next to the service)."""
    directory = Path(directory or DEFAULT_DIR)
    meta = json.loads((directory / META_FILE).read_text())
    if meta.get("sklearn_version") != sklearn.__version__:
        # Unpickling across versions may "work" and predict garbage; refuse instead.
        raise ModelVersionError(f"{directory / MODEL_FILE} was trained with scikit-learn "
                                f"{meta.get('sklearn_version')}, this is {sklearn.__version__}: retrain it")
    return Model(joblib.load(directory / MODEL_FILE), meta, delay_ms)
