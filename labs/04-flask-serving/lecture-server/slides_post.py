"""The lecture's Flask server with bug 1 fixed (POST allowed); bug 2 is still there (see server.py)."""
import numpy as np
from flask import Flask, request
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

model = (
    LogisticRegression(random_state=0)
    .fit(*load_iris(return_X_y=True)))
app = Flask(__name__)
@app.route('/predict', methods=['POST'])  # bug 1 fixed
def hello_world():
    request_data = request.get_json()
    data = np.array(request_data['data'])
    predictions = model.predict(data)
    return {"result": list(predictions)}


if __name__ == '__main__':
    # Not on the slides, which never show how the server starts. host 0.0.0.0: Flask's default
    # 127.0.0.1 cannot be reached from outside the container (lab 01).
    app.run(host='0.0.0.0', port=8000)
