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

    def predict(self, rows: list[list[float]]) -> list[int]:
        """Class ids for rows of 4 numbers (rows are validated by the caller)."""
        if self.delay:
            time.sleep(self.delay)
        # float64 up front: the dtype the model was trained on, and one conversion for a big batch.
        # tolist(): numpy integers are not JSON serialisable, Python ints are.
        return self.estimator.predict(np.asarray(rows, dtype=np.float64)).tolist()


def load_model(directory: str | Path | None = None, delay_ms: float = 0.0) -> Model:
    """Load model.joblib + model.json from `directory` (default: ./model next to the service)."""
    directory = Path(directory or DEFAULT_DIR)
    meta = json.loads((directory / META_FILE).read_text())
    if meta.get("sklearn_version") != sklearn.__version__:
        # Unpickling across versions may "work" and predict garbage; refuse instead.
        raise ModelVersionError(f"{directory / MODEL_FILE} was trained with scikit-learn "
                                f"{meta.get('sklearn_version')}, this is {sklearn.__version__}: retrain it")
    return Model(joblib.load(directory / MODEL_FILE), meta, delay_ms)
