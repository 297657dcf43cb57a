"""Sync vs async serving, measured: `python -m labkit.bench_async` (make bench-async).

Builds labs/05-celery, starts Redis and the API (gunicorn, 2 processes) on a labelled network, then
  - sync:  N x POST /predict to the API, from CLIENTS locust users: req/s and p50/p99 latency;
  - async: N x POST /tasks (submitted at once by CLIENTS locust users), with a Celery worker of 1 and then
           2 pool processes: tasks/s from the first submit to the last SUCCESS, and p50/p99 completion
           latency (submit -> the worker's date_done, read from the Redis result backend).
Prints one table. Bounded (every wait has a deadline) and removes everything it started, also on failure.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import docker
import redis
import requests

from labkit import load
from labkit.load import percentile
from labkit.resources import RUN_LABEL, new_run_id, remove_labelled, unique_name

LAB = Path(__file__).resolve().parent.parent / "labs" / "05-celery"
ROWS = [[5.1, 3.5, 1.4, 0.2], [2.4, 0.1, 5.3, 4.2]]
DEADLINE = 300  # seconds for any one phase


@dataclass
class Row:
    path: str
    processes: int
    n: int
    per_second: float
    p50_ms: float
    p99_ms: float
    client_cpu_seconds: float = 0.0  # of the load clients (locust processes) while they submitted

    @property
    def key(self) -> str:
        """The row's name for labkit.bench's targets."""
        return "predict" if self.path.startswith("sync") else f"tasks:{self.processes}"


def wait_for(predicate, timeout: float, what: str, interval: float = 0.3):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"{what}: not within {timeout:.0f} s")


class Bench:
    """The containers of one benchmark run, all labelled with its run id."""

    def __init__(self, client: docker.DockerClient, run_id: str) -> None:
        self.client, self.run_id = client, run_id
        self.labels = {RUN_LABEL: run_id}
        self.image = unique_name(run_id, "bench-async")
        self.network = unique_name(run_id, "bench-async", "net")

    def name(self, *parts: str) -> str:
        return unique_name(self.run_id, "bench-async", *parts)

    def run(self, image: str, name: str, command=None, ports=None, env=None, alias=None):
        container = self.client.containers.create(image, command, name=name, labels=self.labels, detach=True,
                                                  environment=env or {}, ports=ports or {})
        self.client.networks.get(self.network).connect(container, aliases=[alias] if alias else None)
        container.start()
        return container

    def port(self, container, port: int) -> int:
        container.reload()
        return int(container.attrs["NetworkSettings"]["Ports"][f"{port}/tcp"][0]["HostPort"])

    def start(self, env: dict[str, str]) -> None:
        self.client.images.build(path=str(LAB), tag=self.image, labels=self.labels, rm=True)
        self.client.networks.create(self.network, labels=self.labels)
        self.redis = self.run("redis:7", self.name("redis"), ports={"6379/tcp": ("127.0.0.1", None)}, alias="redis")
        self.api = self.run(self.image, self.name("api"), ports={"8000/tcp": ("127.0.0.1", None)}, env=env)
        self.store = redis.Redis(port=self.port(self.redis, 6379), db=1)
        self.base = f"http://127.0.0.1:{self.port(self.api, 8000)}"
        wait_for(self._healthy, 90, "the API's /health")

    def _healthy(self) -> bool:
        try:
            return requests.get(f"{self.base}/health", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def start_worker(self, processes: int, env: dict[str, str]):
        worker = self.run(self.image, self.name(f"worker-{processes}"), env=env,
                          command=["celery", "-A", "tasks", "worker", "--loglevel=WARNING",
                                   f"--concurrency={processes}", "--without-gossip", "--without-mingle"])
        # Ready when it answers a Celery ping (the image's healthcheck script sends one).
        wait_for(lambda: worker.exec_run(["python", "healthcheck.py"]).exit_code == 0, 90,
                 f"a worker with {processes} process(es)", interval=1)
        return worker


def measure_sync(base: str, n: int, clients: int) -> Row:
    """`n` x POST /predict from `clients` locust users; each answer must be 200 {"result": [0, 2]}."""
    result = load.run(f"{base}/predict", users=clients, max_requests=n, seconds=DEADLINE,
                      payload={"data": ROWS}, expect={"result": [0, 2]})
    assert result.requests == n, f"{n - result.requests} of {n} predictions failed: {dict(result.statuses)}"
    return Row("sync  POST /predict", 2, n, result.rps, result.p50_ms, result.p99_ms)


def measure_async(bench: Bench, processes: int, n: int, clients: int, expected=None) -> Row:
    """`bench` needs `.base` (the API's URL) and `.store` (a client of the result backend, db 1);
    `expected`: the task's stored result (default: this lab's {"result": [0, 2]})."""
    expected = {"result": [0, 2]} if expected is None else expected
    sent = load.run(f"{bench.base}/tasks", users=clients, max_requests=n, seconds=DEADLINE,
                    payload={"data": ROWS}, ok=(202,), collect="task_id")
    assert sent.requests == n, f"{n - sent.requests} of {n} submissions failed: {dict(sent.statuses)}"
    submitted = sent.collected  # [(task id, the time its POST was sent)]
    done: dict[str, float] = {}

    def all_done() -> bool:
        waiting = [task_id for task_id, _ in submitted if task_id not in done]
        for start in range(0, len(waiting), 500):
            chunk = waiting[start:start + 500]
            for task_id, raw in zip(chunk, bench.store.mget([f"celery-task-meta-{t}" for t in chunk])):
                meta = json.loads(raw) if raw else {}
                if meta.get("status") == "SUCCESS":
                    assert meta["result"] == expected, meta
                    done[task_id] = datetime.fromisoformat(meta["date_done"]).timestamp()
        return len(done) == n

    wait_for(all_done, DEADLINE, f"{n} tasks on {processes} worker process(es)", interval=0.2)
    latencies = [done[task_id] - sent for task_id, sent in submitted]
    span = max(done.values()) - min(sent for _, sent in submitted)
    return Row("async POST /tasks -> SUCCESS", processes, n, n / span,
               1000 * percentile(latencies, 50), 1000 * percentile(latencies, 99), sent.client_cpu_seconds)


def run(n: int = 1000, clients: int = 8, processes: tuple[int, ...] = (1, 2), log=print, with_worker=None) -> list[Row]:
    """Measure the sync path and the async path with each worker size; returns the table's rows.
    `with_worker(bench, processes)`, if given, runs after each async measurement, its worker still up."""
    client = docker.from_env(timeout=300)
    run_id = new_run_id()
    bench = Bench(client, run_id)
    env = {"BROKER_URL": "redis://redis:6379/0", "RESULT_BACKEND": "redis://redis:6379/1"}
    rows: list[Row] = []
    try:
        log("building labs/05-celery and starting Redis + the API ...")
        bench.start(env)
        log(f"sync: {n} x POST /predict from {clients} locust users ...")
        rows.append(measure_sync(bench.base, n, clients))
        for count in processes:
            log(f"async: {n} tasks, a worker with {count} process(es) ...")
            worker = bench.start_worker(count, env)
            try:
                rows.append(measure_async(bench, count, n, clients))
                if with_worker:
                    with_worker(bench, count)
            finally:
                worker.remove(force=True)
    finally:
        remove_labelled(client, run_id)
        client.close()
    return rows


def table(rows: list[Row]) -> str:
    lines = [f"| {'path':<30} | {'processes':>9} | {'n':>5} | {'per second':>10} | {'p50 ms':>8} | {'p99 ms':>8} |",
             f"|{'-' * 32}|{'-' * 10}:|{'-' * 6}:|{'-' * 11}:|{'-' * 9}:|{'-' * 9}:|"]
    for r in rows:
        lines.append(f"| {r.path:<30} | {r.processes:>9} | {r.n:>5} | {r.per_second:>10.1f} | "
                     f"{r.p50_ms:>8.1f} | {r.p99_ms:>8.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000, help="requests / tasks per measurement (default 1000)")
    parser.add_argument("--clients", type=int, default=8, help="locust users sending them (default 8)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    rows = run(args.tasks, args.clients)
    print()
    print(table(rows))
    print(f"\nsync: gunicorn with 2 processes, latency per request. async: all {args.tasks} tasks submitted at once; "
          "latency = submit -> SUCCESS,\nso it includes the time a task waited in the queue. "
          f"Whole run: {time.monotonic() - started:.0f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
