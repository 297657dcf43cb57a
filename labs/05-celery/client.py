"""The lecture's client: queue a prediction with .delay(), check .ready(), then .get() the result.

Run it where the broker is reachable, e.g. inside the compose project:
    docker compose exec api python client.py
"""
from tasks import predict

request = predict.delay([[5.1, 3.5, 1.4, 0.2], [2.4, 0.1, 5.3, 4.2]])
print("task id assigned:", bool(request.id))
print("ready right after delay():", request.ready())  # most likely False: a worker has not run it yet
print("result:", request.get(timeout=30))  # blocks until SUCCESS, raises on FAILURE or after 30 s
print("ready now:", request.ready(), "| state:", request.state)
