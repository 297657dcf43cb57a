"""Where the time of one asynchronous task goes: the stages of POST /tasks -> result, measured.

One task at a time on an idle service (so no stage includes waiting behind other tasks), repeated,
the median of each stage. The stages come from four clocks on the one machine:
  - the client's: when POST /tasks was sent and answered, when GET /tasks/<id> was sent and answered;
  - the result backend's messages: Celery's Redis backend PUBLISHes every state it stores on the
    channel named like the key (celery-task-meta-<id>), so a subscriber sees STARTED (the worker took
    the task: task_track_started) and SUCCESS arrive;
  - the stored result's date_done: when the worker finished the task and began to store its result.

    enqueue        POST /tasks sent -> answered 202 (validate, record the id, publish to the broker)
    wait in queue  answered -> STARTED published (broker delivery, prefetch, hand-over to a pool
                   process, the STARTED write)
    run            STARTED -> date_done (the task body: the model)
    store result   date_done -> SUCCESS published (SET + PUBLISH on the result backend)
    read result    GET /tasks/<id> sent -> answered, once SUCCESS is stored
    end to end     POST /tasks sent -> that answer: a task's latency when it waits behind no other
"run" and "store result" split at date_done, the worker's clock, while STARTED and SUCCESS are stamped
when the subscriber (this process) receives them: on a busy machine that lag can exceed the task's
0.3 ms and make "run" negative; their sum is exact. And, end to end, what a client sees: polling GET /tasks/<id> every POLL_SECONDS, against one
GET /tasks/<id>?wait=<seconds> that the API answers when the result is stored.

cpu_per_task() adds where the CPU goes in a burst of tasks: the CPU time of each part's processes
(read from /proc, so only where the containers' processes are the host's: Linux, not Docker Desktop)
divided by the tasks. Their sum against the machine's cores bounds the tasks per second.
"""
from __future__ import annotations

import json
import os
import statistics
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable

import docker
import requests

from labkit.load import cpu_now  # this process's CPU: its client threads and Redis polling

ROWS = [[5.1, 3.5, 1.4, 0.2], [2.4, 0.1, 5.3, 4.2]]
POLL_SECONDS = 0.1  # how often the polling client asks
CLIENT_TASK_DELAY = 0.05  # the clients' task takes 50 ms (its "delay"), so neither finds it done at once
WAIT_SECONDS = 10  # the ?wait= of the waiting client
TIMEOUT = 30  # seconds any one task may take before the measurement gives up


@dataclass
class Stage:
    name: str
    what: str
    ms: float | None  # the median; None when not measured (e.g. an API without ?wait=)


class Published:
    """Records when each (task id, state) was published by the result backend."""

    def __init__(self, store) -> None:
        self.at: dict[tuple[str, str], float] = {}
        self.done: dict[str, float] = {}  # task id -> its date_done
        self.arrived = threading.Condition()
        self.pubsub = store.pubsub(ignore_subscribe_messages=True)
        self.pubsub.psubscribe("celery-task-meta-*")
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._listen, daemon=True)
        self.thread.start()

    def _listen(self) -> None:
        while not self.stopped.is_set():
            message = self.pubsub.get_message(timeout=0.2)
            if not message or message["type"] != "pmessage":
                continue
            now = time.time()
            meta = json.loads(message["data"])
            with self.arrived:
                self.at[meta["task_id"], meta["status"]] = now
                if meta.get("date_done"):
                    self.done[meta["task_id"]] = datetime.fromisoformat(meta["date_done"]).timestamp()
                self.arrived.notify_all()

    def wait_for(self, task_id: str, state: str) -> float:
        with self.arrived:
            if not self.arrived.wait_for(lambda: (task_id, state) in self.at, timeout=TIMEOUT):
                raise TimeoutError(f"task {task_id} was not {state} within {TIMEOUT} s")
            return self.at[task_id, state]

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(2)
        self.pubsub.close()


def submit(session: requests.Session, base: str, delay: float = 0) -> tuple[str, float, float]:
    """(task id, sent, answered)."""
    sent = time.time()
    response = session.post(f"{base}/tasks", json={"data": ROWS, "delay": delay}, timeout=TIMEOUT)
    answered = time.time()
    assert response.status_code == 202, response.text
    return response.json()["task_id"], sent, answered


def result_in_hand(session: requests.Session, base: str, wait: bool) -> float | None:
    """Seconds from POST /tasks to the client holding the result: polling, or one GET ?wait=."""
    task_id, sent, _ = submit(session, base, delay=CLIENT_TASK_DELAY)
    deadline = sent + TIMEOUT
    while time.time() < deadline:
        if not wait:
            time.sleep(POLL_SECONDS)
        url = f"{base}/tasks/{task_id}" + (f"?wait={WAIT_SECONDS}" if wait else "")
        body = session.get(url, timeout=TIMEOUT).json()
        if body.get("status") == "SUCCESS":
            return time.time() - sent
        if wait:
            return None  # answered before the result: this API has no ?wait=
    raise TimeoutError(f"task {task_id}: no result within {TIMEOUT} s")


def median_ms(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return 1000 * statistics.median(known) if known else None


def measure(target, samples: int = 30) -> list[Stage]:
    """`target` needs `.base` (the API's URL) and `.store` (a redis client of the result backend)."""
    session = requests.Session()
    published = Published(target.store)
    stages: dict[str, list[float | None]] = {name: [] for name in
                                             ("enqueue", "wait in queue", "run", "store result", "read result",
                                              "end to end")}
    try:
        for _ in range(3):  # warm-up: connections, the worker's first task
            submit(session, target.base)
        for _ in range(samples):
            task_id, sent, answered = submit(session, target.base)
            succeeded = published.wait_for(task_id, "SUCCESS")
            started = published.at.get((task_id, "STARTED"))
            done = published.done[task_id]
            read_from = time.time()
            assert session.get(f"{target.base}/tasks/{task_id}", timeout=TIMEOUT).json()["status"] == "SUCCESS"
            stages["enqueue"].append(answered - sent)
            stages["wait in queue"].append(None if started is None else started - answered)
            stages["run"].append(None if started is None else done - started)
            stages["store result"].append(succeeded - done)
            read = time.time()
            stages["read result"].append(read - read_from)
            stages["end to end"].append(read - sent)
        polled = [result_in_hand(session, target.base, wait=False) for _ in range(samples)]
        waited = [result_in_hand(session, target.base, wait=True) for _ in range(samples)]
    finally:
        published.close()
        session.close()
    described = {
        "enqueue": "POST /tasks sent -> 202 (validate, record id, publish)",
        "wait in queue": "202 -> STARTED stored (delivery, prefetch, to a pool process)",
        "run": "STARTED -> date_done (the task: the model)",
        "store result": "date_done -> SUCCESS published (SET + PUBLISH)",
        "read result": "GET /tasks/<id> -> 200 SUCCESS",
        "end to end": "POST /tasks sent -> result read (one task, no queue)",
    }
    rows = [Stage(name, described[name], median_ms(values)) for name, values in stages.items()]
    task = f"a {CLIENT_TASK_DELAY * 1000:.0f} ms task"
    rows.append(Stage("client: polling", f"{task}: POST -> result, GET every {POLL_SECONDS * 1000:.0f} ms",
                      median_ms(polled)))
    rows.append(Stage("client: ?wait=", f"{task}: POST -> result, one GET /tasks/<id>?wait={WAIT_SECONDS}",
                      median_ms(waited)))
    return rows


def cpu_seconds(container) -> float | None:
    """CPU time (user + system) of a container's running processes; None where /proc does not show them."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    try:
        for row in container.top(ps_args="-eo pid")["Processes"]:
            fields = Path(f"/proc/{row[0]}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    except (OSError, IndexError, ValueError, docker.errors.APIError):
        return None
    return total


def machine_seconds() -> tuple[float, float] | None:
    """(busy, idle) CPU seconds of the whole machine so far, all cores (/proc/stat); None without it. Busy
    less the parts measured is what ran elsewhere: docker-proxy (loopback ports), dockerd (logs), ..."""
    try:
        fields = [int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    except (OSError, ValueError):
        return None
    tick = os.sysconf("SC_CLK_TCK")
    user, nice, system, idle, iowait, irq, softirq = fields
    return (user + nice + system + irq + softirq) / tick, (idle + iowait) / tick


def cpu_per_task(parts: dict[str, list], burst: Callable[[], tuple[int, float]]) -> list[Stage]:
    """ms of CPU per task of each part (name -> its containers) and of the client, over `burst()`,
    which sends tasks and returns how many, and the CPU seconds of the client processes it started
    (load clients: this process's own CPU counts too, e.g. polling the result backend)."""
    def now() -> dict[str, float | None]:
        readings = {name: [cpu_seconds(c) for c in containers] for name, containers in parts.items()}
        return {name: None if None in values else sum(values) for name, values in readings.items()}

    before, client_before, machine_before = now(), cpu_now(), machine_seconds()
    tasks, client_processes = burst()
    after, client_after, machine_after = now(), cpu_now() + client_processes, machine_seconds()
    rows = [Stage(f"CPU: {name}", "ms of CPU per task, in a burst of tasks",
                  None if before[name] is None or after[name] is None else 1000 * (after[name] - before[name]) / tasks)
            for name in parts]
    rows.append(Stage("CPU: client", "ms of CPU per task: the load clients' requests, polling Redis", 1000 * (client_after - client_before) / tasks))
    return rows + elsewhere(rows, machine_before, machine_after, tasks, "task")


def elsewhere(rows: list[Stage], before, after, count: int, unit: str) -> list[Stage]:
    """Two more rows from the machine's CPU over the same run, per `unit`: the busy CPU not in `rows`
    (the kernel's network processing, which no process is charged for; docker-proxy behind the loopback
    ports; dockerd; any other work on the machine) and the idle CPU (cores nobody used)."""
    if before is None or after is None or any(row.ms is None for row in rows) or not count:
        return []
    busy, idle = (1000 * (a - b) / count for a, b in zip(after, before))
    return [Stage("CPU elsewhere", f"ms of the machine's busy CPU per {unit} not in the rows above (kernel networking, docker-proxy, dockerd)",
                  max(busy - sum(row.ms for row in rows), 0.0)),
            Stage("CPU idle", f"ms of idle CPU per {unit}: cores that waited", idle)]
