"""`make up`'s last step: the lecture's two client snippets against the running service."""
from __future__ import annotations

import os
import sys
import time

import requests

LECTURE_REQUEST = {"data": [[5.1, 3.5, 1.4, 0.2], [2.4, 0.1, 5.3, 4.2]]}
POLL_SECONDS = 60


def main(gateway_port: int | None = None, flower_port: int | None = None, logs: str = "docker compose logs",
         stop: str = "make down") -> int:
    base = f"http://127.0.0.1:{gateway_port or os.environ.get('GATEWAY_PORT', '8000')}"
    flower = f"http://127.0.0.1:{flower_port or os.environ.get('FLOWER_PORT', '5555')}"

    print(f"sync:  requests.post('{base}/predict', json={LECTURE_REQUEST})")
    sync = requests.post(f"{base}/predict", json=LECTURE_REQUEST, timeout=10)
    print(f"       -> HTTP {sync.status_code} {sync.json()}")

    submitted = requests.post(f"{base}/tasks", json=LECTURE_REQUEST, timeout=10)
    task_id = submitted.json().get("task_id")
    print(f"async: requests.post('{base}/tasks', ...) -> HTTP {submitted.status_code} task_id={task_id}")
    deadline = time.monotonic() + POLL_SECONDS
    polls, task = 0, {}
    while time.monotonic() < deadline:
        polls += 1
        task = requests.get(f"{base}/tasks/{task_id}", timeout=10).json()
        if task.get("status") in ("SUCCESS", "FAILURE"):
            break
        time.sleep(0.2)  # the lecture's client polls: ask again a moment later
    print(f"       requests.get('{base}/tasks/{task_id}') after {polls} poll(s) -> {task}")

    ok = sync.json().get("result") == [0, 2] and task.get("status") == "SUCCESS" and task.get("result") == [0, 2]
    if not ok:
        print(f"expected [0, 2] from both paths; see `{logs}`", file=sys.stderr)
        return 1
    print(f"""
The week's ML service is up:
  POST {base}/predict        synchronous prediction (cached)
  POST {base}/tasks          asynchronous prediction -> task id;  GET {base}/tasks/<id>
  GET  {base}/openapi.json   the API description
  GET  {base}/health         health
  {flower}                  Flower: the Celery workers and tasks
Stop it with: {stop}""")
    return 0


if __name__ == "__main__":
    sys.exit(main())
