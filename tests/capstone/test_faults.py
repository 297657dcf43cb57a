"""The capstone survives the failures real services see. Each test prints what it sent, what failed
and what was lost; `make chaos` runs them with bigger loads (CHAOS=full)."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from labkit.load import Load
from labkit.testing import wait_until

from .conftest import FULL, WORKER_PROCESSES

pytestmark = pytest.mark.capstone

LECTURE = {"data": [[5.1, 3.5, 1.4, 0.2], [2.4, 0.1, 5.3, 4.2]]}
MAX_REQUESTS = 20_000  # a bound on every background load, besides its seconds
TASK_SECONDS = 0.1
# The service's promise (labs/06-capstone/README.md): a task accepted with 202 finishes within
# RECOVERY_SECONDS after a worker is back, plus the time the tasks queued before it take to run.
RECOVERY_SECONDS = 15


def guaranteed_seconds(queued: int) -> float:
    return RECOVERY_SECONDS + queued * TASK_SECONDS / WORKER_PROCESSES


def submit(base: str, delay: float = 0.0) -> str:
    response = requests.post(f"{base}/tasks", json={**LECTURE, "delay": delay}, timeout=10)
    assert response.status_code == 202, f"submit answered {response.status_code} {response.text[:200]}"
    return response.json()["task_id"]


def states(base: str, task_ids: list[str]) -> dict[str, str]:
    found = {}
    with requests.Session() as session:
        for task_id in task_ids:
            try:
                answer = session.get(f"{base}/tasks/{task_id}", timeout=10).json()
                ok = answer["status"] == "SUCCESS" and answer["result"] == [0, 2]
                found[task_id] = "DONE" if ok else answer["status"]
            except (requests.RequestException, ValueError, KeyError):
                found[task_id] = "UNKNOWN"
    return found


def test_the_service_answers_the_lectures_two_client_snippets(capstone):
    """Sync POST /predict answers [0, 2]; an async task submitted through the gateway finishes with [0, 2]."""
    sync = requests.post(f"{capstone.base}/predict", json=LECTURE, timeout=10)
    assert sync.status_code == 200 and sync.json() == {"result": [0, 2]}, sync.text
    task_id = submit(capstone.base)
    assert wait_until(lambda: states(capstone.base, [task_id])[task_id] == "DONE", 60)
    assert requests.get(f"{capstone.base}/openapi.json", timeout=10).json()["openapi"].startswith("3.")


def test_a_worker_killed_under_load_loses_no_task(capstone, report):
    """SIGKILL the worker while tasks run; once a worker is back, every submitted task finishes in time."""
    count = 400 if FULL else 60
    task_ids = [submit(capstone.base, delay=TASK_SECONDS) for _ in range(count)]
    # Kill while a task runs: by the end of a big submission the first tasks are long done.
    assert wait_until(lambda: "STARTED" in states(capstone.base, task_ids).values(), 30), "no task started"
    worker = capstone.containers("worker")[0]
    subprocess.run(["docker", "kill", worker], check=True, capture_output=True, timeout=30)
    # RabbitMQ sees the worker's connection drop and makes its unacknowledged tasks ready again at once.
    requeued = wait_until(lambda: capstone.queue_depth()[1] == 0, 15, interval=0.2)
    ready, unacked = capstone.queue_depth()
    assert requeued, f"RabbitMQ still holds {unacked} unacknowledged tasks of the killed worker"
    restarted = capstone.restart_worker(worker)
    assert restarted, "the worker did not report 'ready' within 120 s of its restart"
    back_at = time.monotonic()
    bound = guaranteed_seconds(count)
    asked_at = [back_at]

    def all_done() -> bool:
        asked_at[0] = time.monotonic()  # reading 400 states takes seconds under load: time the asking
        return all(s == "DONE" for s in states(capstone.base, task_ids).values())

    done = wait_until(all_done, bound, interval=1)
    took = asked_at[0] - back_at  # when the check that found every task done began
    final = states(capstone.base, task_ids)
    lost = [t for t, s in final.items() if s != "DONE"]
    report("worker killed under load", tasks_sent=count, tasks_done=count - len(lost), tasks_lost=len(lost),
           after_kill=f"ready={ready} unacked={unacked}", all_done_after_restart_s=f"{took:.1f}", bound_s=bound)
    assert done and not lost, (f"{len(lost)} of {count} tasks not finished {bound} s after the worker was back: "
                               f"{[final[t] for t in lost[:5]]}")


def test_a_result_store_restart_gives_503_not_500_and_recovers_within_10_seconds(capstone, report):
    """While the results' Redis is down, /tasks answers 503 (never another 5xx); it serves again within 10 s."""
    results = capstone.containers("results")[0]
    with Load(f"{capstone.base}/tasks", users=2, seconds=90, max_requests=MAX_REQUESTS, payload=LECTURE,
              ok=(202, 503)) as load:
        load.wait_for(20)
        subprocess.run(["docker", "stop", "-t", "2", results], check=True, capture_output=True, timeout=30)
        before = dict(load.statuses)
        load.wait_for(before.get(503, 0) + 20, timeout=20, status=503)  # 20 answered 503 since the stop
        while_down = {k: v - before.get(k, 0) for k, v in load.statuses.items()}
        subprocess.run(["docker", "start", results], check=True, capture_output=True, timeout=30)
        back_at = time.monotonic()
        recovered = wait_until(lambda: requests.post(f"{capstone.base}/tasks", json=LECTURE, timeout=10)
                               .status_code == 202, 10, interval=0.2)
        took = time.monotonic() - back_at
    other_5xx = {s: n for s, n in load.statuses.items() if s not in (202, 503)}
    report("redis restarted", requests_sent=load.sent, answered_503_while_down=while_down.get(503, 0),
           other_errors=sum(other_5xx.values()), recovered_in_s=f"{took:.1f}")
    assert not other_5xx, f"answers other than 202/503: {other_5xx}"
    assert while_down.get(503, 0) > 0, f"expected 503 while Redis was down; got {while_down}"
    assert recovered, "POST /tasks did not answer 202 within 10 s of Redis starting again"


def test_an_api_replica_killed_under_load_fails_at_most_1_percent(capstone, report):
    """With 3 api replicas behind the gateway, killing one under load fails at most 1 % of requests."""
    capstone.compose("up", "--detach", "--no-recreate", "--scale", "api=3", "--wait", "--wait-timeout", "120", "api")
    replicas = capstone.containers("api")
    assert len(replicas) == 3, replicas
    with Load(f"{capstone.base}/predict", users=4, seconds=60, max_requests=MAX_REQUESTS, payload=LECTURE) as load:
        load.wait_for(200)
        subprocess.run(["docker", "kill", replicas[0]], check=True, capture_output=True, timeout=30)
        load.wait_for(load.sent + (2000 if FULL else 400))
    ratio = load.failed / max(load.sent, 1)
    report("api replica killed under load", requests_sent=load.sent, failed=load.failed,
           failed_percent=f"{100 * ratio:.2f}", tasks_lost=0)
    assert ratio <= 0.01, f"{load.failed} of {load.sent} failed: {dict(load.statuses)}"


def test_fuzzing_predict_and_tasks_from_openapi_finds_no_5xx(capstone, report):
    """schemathesis, driven by /openapi.json, sends generated and malformed requests: no 5xx, no crash."""
    schemathesis = Path(sys.executable).with_name("schemathesis")
    # One worker: with two threads, hypothesis' lambda descriptions call ast.parse at once, and CPython
    # 3.11 raised "SystemError: AST constructor recursion depth mismatch" inside schemathesis (make
    # chaos: 298 of 298 cases passed, exit code 1 for that Runtime Error).
    result = subprocess.run(
        [str(schemathesis), "run", f"{capstone.base}/openapi.json", "--checks", "not_a_server_error",
         "--phases", "examples,coverage,fuzzing", "--workers", "1", "--include-path-regex", "^/(predict|tasks)",
         "--max-examples", "100" if FULL else "25", "--no-color"],
        capture_output=True, text=True, timeout=600)
    summary = [line for line in result.stdout.splitlines() if "generated" in line or "passed" in line]
    report("schemathesis fuzz", summary=" | ".join(s.strip() for s in summary[-2:]), exit_code=result.returncode)
    assert result.returncode == 0, result.stdout[-3000:]
    health = requests.get(f"{capstone.base}/health", timeout=10)
    assert health.status_code == 200, "the service stopped serving after the fuzzing"
