"""The lecture's minimal ML service, with its bugs fixed (each fix is marked FIX)."""
import numpy as np
from flask import Flask, request
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

model = (
    # FIX: max_iter=1000, at the default 100 iterations lbfgs warns that it did not converge.
    LogisticRegression(random_state=0, max_iter=1000)
    .fit(*load_iris(return_X_y=True))
)

app = Flask(__name__)


# FIX: methods=["POST"], the lecture's route accepted only GET while its client POSTs.
@app.route('/predict', methods=['POST'])
def hello_world():
    request_data = request.get_json()
    data = np.array(request_data['data'])
    predictions = model.predict(data)
    # FIX: .tolist(), list(predictions) holds numpy integers, which JSON cannot encode.
    return {"result": predictions.tolist()}


@app.route('/health')
def health():
    return {"status": "ok"}


if __name__ == '__main__':
    # FIX: host 0.0.0.0, Flask's default 127.0.0.1 is unreachable from outside the container.
    app.run(host='0.0.0.0', port=8000)
