"""Lab 05's stack for the graded tests: Redis (or RabbitMQ), Celery workers, beat and the API, each a
real container of the student's image on one labelled Docker network.

Containers reach each other by network alias (redis, rabbitmq); the test reaches only the API, on a
port published on 127.0.0.1. Nothing here waits by sleeping: every wait polls a condition (a log line,
an HTTP answer, a command's exit code) against a deadline and turns a timeout into feedback.
"""
from __future__ import annotations

import time

import requests
from testcontainers.core.network import Network

from labkit.resources import RUN_LABEL
from labkit.testing import LIMITS, Feedback, LabContainer, ServingWait, feedback, wait_until

LECTURE_ROWS = [[5.1, 3.5, 1.4, 0.2], [2.4, 0.1, 5.3, 4.2]]
VISIBILITY_TIMEOUT = 10  # seconds: small, so a dead worker's message comes back within a test
SCHEDULE_SECONDS = 2
REDIS_ENV = {
    "BROKER_URL": "redis://redis:6379/0",
    "RESULT_BACKEND": "redis://redis:6379/1",
    "VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
    "SCHEDULE_SECONDS": str(SCHEDULE_SECONDS),
}
WORKER_COMMAND = ["celery", "-A", "tasks", "worker", "--loglevel=INFO", "--concurrency=2"]
LOG_LINES = 5000  # the most log lines the grader reads of a worker
BEAT_COMMAND = ["celery", "-A", "tasks", "beat", "--loglevel=INFO", "--schedule", "/tmp/celerybeat-schedule"]


def create_network(run_id: str, name: str) -> Network:
    network = Network(docker_network_kw={"labels": {RUN_LABEL: run_id}})
    network.name = name
    return network.create()


def container(image: str, run_id: str, name: str, network: Network, env: dict[str, str],
              command: list[str] | None = None, alias: str | None = None) -> LabContainer:
    """A (not yet started) container of `image` on `network`."""
    box = LabContainer(image, run_id, name).with_network(network)
    if alias:
        box.with_network_aliases(alias)
    if command:
        box.with_command(command)
    for key, value in env.items():
        box.with_env(key, value)
    return box


def exited(box: LabContainer) -> int | None:
    """The exit code when the container has stopped, else None."""
    wrapped = box.get_wrapped_container()
    wrapped.reload()
    return wrapped.attrs["State"]["ExitCode"] if wrapped.status in ("exited", "dead") else None


def wait_for_log(box: LabContainer, needle: str, what: str, timeout: float = 60) -> None:
    """Poll the container's log for `needle`; feedback when it exits or the deadline passes."""
    def seen():
        if exited(box) is not None:
            return "exited"
        return needle in box.get_wrapped_container().logs().decode(errors="replace")

    outcome = wait_until(seen, timeout, interval=0.3)
    if outcome is True:
        return
    got = (f"it exited with code {exited(box)}" if outcome == "exited"
           else f"no {needle!r} in its log within {timeout:.0f} s")
    raise Feedback(feedback(what, got, box.get_wrapped_container()))


def start_redis(run_id: str, name: str, network: Network) -> LabContainer:
    box = container("redis:7", run_id, name, network, {}, alias="redis").start()
    wait_for_log(box, "Ready to accept connections", "Redis to start")
    return box


def start_rabbitmq(run_id: str, name: str, network: Network) -> LabContainer:
    box = container("rabbitmq:3", run_id, name, network, {}, alias="rabbitmq").start()

    def listening():
        if exited(box) is not None:
            raise Feedback(feedback("RabbitMQ to start", "it exited", box.get_wrapped_container()))
        # A TCP connect to AMQP's port: what `rabbitmq-diagnostics check_port_listener` says, minus its ~1 s of CPU.
        return box.exec(["bash", "-c", "</dev/tcp/127.0.0.1/5672"]).exit_code == 0

    if not wait_until(listening, 90, interval=0.5):
        raise Feedback(feedback("RabbitMQ to listen on 5672 within 90 s", "it did not", box.get_wrapped_container()))
    return box


def start_worker(image: str, run_id: str, name: str, network: Network, env: dict[str, str],
                 command: list[str] = WORKER_COMMAND) -> LabContainer:
    """A Celery worker (`celery -A tasks worker`), once it logs that it is ready."""
    box = container(image, run_id, name, network, env, command).start()
    wait_for_log(box, " ready.", "a Celery worker to start with `celery -A tasks worker` and connect to its broker")
    return box


def start_beat(image: str, run_id: str, name: str, network: Network, env: dict[str, str]) -> LabContainer:
    box = container(image, run_id, name, network, env, BEAT_COMMAND).start()
    wait_for_log(box, "beat: Starting", "celery beat to start with `celery -A tasks beat`")
    return box


def start_api(image: str, run_id: str, name: str, network: Network, env: dict[str, str]) -> LabContainer:
    """The API (the image's default command), once GET /health answers below 500."""
    box = container(image, run_id, name, network, env).publish(8000)
    wait = ServingWait(8000, "/health").for_status_code_matching(lambda code: code < 500)
    box.waiting_for(wait.with_startup_timeout(60).with_poll_interval(0.5))
    try:
        box.start()
    except Exception:
        box.remove()
        raise
    return box


def call(method: str, url: str, box: LabContainer | None = None, **kwargs) -> requests.Response:
    """An HTTP request whose failure to answer becomes feedback."""
    try:
        return requests.request(method, url, timeout=kwargs.pop("timeout", 10), **kwargs)
    except requests.RequestException as error:
        raise Feedback(feedback(f"an HTTP answer from {method} {url}", f"the request failed: {error}",
                                box.get_wrapped_container() if box else None)) from None


def submit(api: LabContainer, payload: dict) -> str:
    """POST /tasks; the task id of a 202 answer (feedback for anything else)."""
    response = call("POST", api.url(path="/tasks"), api, json=payload)
    body = response.json() if response.headers.get("Content-Type", "").startswith("application/json") else None
    if response.status_code != 202 or not isinstance(body, dict) or not isinstance(body.get("task_id"), str):
        raise Feedback(feedback('HTTP 202 {"task_id": "..."} for POST /tasks with valid input',
                                f"HTTP {response.status_code} {response.text[:200]!r}", api.get_wrapped_container()))
    return body["task_id"]


def task_status(api: LabContainer, task_id: str) -> dict:
    response = call("GET", api.url(path=f"/tasks/{task_id}"), api)
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code != 200 or not isinstance(body, dict) or "status" not in body:
        raise Feedback(feedback(f'HTTP 200 {{"task_id", "status", "result"}} for GET /tasks/{task_id}',
                                f"HTTP {response.status_code} {response.text[:200]!r}", api.get_wrapped_container()))
    return body


def poll(api: LabContainer, task_id: str, states: set[str], timeout: float) -> dict:
    """Poll GET /tasks/<id> until its status is one of `states` (or the deadline); the last answer."""
    last: dict = {}

    def reached():
        last.update(task_status(api, task_id))
        return last["status"] in states

    wait_until(reached, timeout, interval=0.25)
    return last


def kill_pool_processes(worker: LabContainer) -> str:
    """SIGKILL every child of the worker's main process (PID 1): the prefork pool processes."""
    result = worker.exec(["sh", "-c", "children=$(cat /proc/1/task/*/children); kill -9 $children; echo $children"])
    return result.output.decode(errors="replace").strip()


def ran_on(worker: LabContainer, task_ids: list[str], timeout: float = 5) -> list[str]:
    """The ids among `task_ids` that `worker` has not logged receiving (Celery's worker logs
    "Task tasks.predict[<id>] received" at INFO): empty when that worker ran them all."""
    left = list(task_ids)

    def all_seen() -> bool:
        log = worker.get_wrapped_container().logs(tail=LOG_LINES)[-LIMITS.read_bytes:].decode(errors="replace")
        left[:] = [task_id for task_id in left if f"[{task_id}] received" not in log]
        return not left

    wait_until(all_seen, timeout)
    return left


def seconds_since(moment: float) -> float:
    return time.monotonic() - moment
