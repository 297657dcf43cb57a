"""Train the iris classifier and save it as an artifact (run at image build time: `python train.py`).

Training at build time, not at start-up, means every container of one image serves the very same
model, starts fast, and needs no training data at run time. Next to the model we record what made
it: the scikit-learn version (a pickle is only safe to load with the version that wrote it) and a
version id, the hash of the artifact, that the cache puts in its keys.
"""
from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import joblib
import sklearn
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

MODEL_FILE, META_FILE = "model.joblib", "model.json"


def train(out_dir: Path) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    # max_iter=1000: at the default 100 iterations lbfgs stops before converging on iris.
    model = LogisticRegression(random_state=0, max_iter=1000).fit(*load_iris(return_X_y=True))
    joblib.dump(model, out_dir / MODEL_FILE)
    digest = hashlib.sha256((out_dir / MODEL_FILE).read_bytes()).hexdigest()
    meta = {
        "version": f"iris-logreg-{digest[:12]}",
        "sklearn_version": sklearn.__version__,
        "classes": ["setosa", "versicolor", "virginica"],
        "features": ["sepal_length", "sepal_width", "petal_length", "petal_width"],
    }
    (out_dir / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    return meta


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "model",
                        help="folder for model.joblib and model.json (default: ./model)")
    print(json.dumps(train(parser.parse_args().out)))
