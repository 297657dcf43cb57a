"""HTTP load with locust, headless: the one load generator of the benches, the fault tests and notebooks 03, 06.

    from labkit.load import Load, run
    result = run("http://127.0.0.1:8000/predict", users=8, seconds=5, payload={"data": [[5.1, 3.5, 1.4, 0.2]]})
    result.rps, result.p50_ms, result.p99_ms, result.errors, result.statuses

    with Load(url, users=2, seconds=90, ok=(202, 503)) as load:   # in the background
        load.wait_for(20)                                        # requests answered so far
        ...                                                      # kill a container meanwhile
    load.sent, load.failed, load.statuses, load.result

What a run does: `users` locust FastHttpUsers (gevent, keep-alive connections, `pause` seconds between requests)
send `method url` until `seconds` pass, `max_requests` are sent, or stop() is called. A request counts
as ok when its status is in `ok` (and its JSON body equals `expect`, when given); every answer's status
(or the exception's name when none came) is counted in `statuses`. `unique=True` varies the first
number of the payload's first row per request, so no request repeats (a guaranteed cache MISS);
`collect="task_id"` keeps that field of every ok answer with its send time; `csv="build/x"` writes
locust's own `x_stats.csv` and `x_failures.csv` (percentiles per endpoint).

Why a child process: importing locust monkey-patches the whole interpreter for gevent (sockets,
threads, subprocess, ssl; `locust/__init__.py` calls `monkey.patch_all()`). Patched late, inside
pytest or a benchmark that already uses threads, docker-py and requests, it breaks them: with locust
2.47 here, `import requests, docker` then `import locust` warns "Monkey-patching ssl after ssl has
already been imported" and the import itself dies in a RecursionError. So the caller's process never
imports locust: `Load` starts `python -m labkit.load` (this module), hands it the plan as JSON on
stdin, reads its counts as JSON lines from stdout (live, for wait_for) and stops it with SIGTERM.
`processes > 1` splits the users over several children (one gevent loop uses one core) and merges.

Latencies are the exact per-request times from locust's `request` event (locust's own percentiles
round to whole milliseconds below 100 ms, too coarse for a /health at 0.5 ms); the CSV has locust's.
"""
from __future__ import annotations

import csv
import importlib.util
import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit

REPORT_EVERY = 0.1  # seconds between the child's progress lines
START_SECONDS = 20  # a child that has not started sending by then is broken


@dataclass
class Result:
    """One load run: counts, the seconds it sent for, exact latency percentiles of the ok requests."""
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    p95_ms: float = float("nan")
    statuses: Counter = field(default_factory=Counter)
    collected: list = field(default_factory=list)  # [(value of the `collect` field, send time)]
    client_cpu_seconds: float = 0.0  # CPU time of the client processes while they sent (not their start-up)

    @property
    def rps(self) -> float:
        """Ok requests per second."""
        return self.requests / self.seconds if self.seconds else 0.0


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) of the values, nearest rank; NaN for none."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def split(total: int, parts: int) -> list[int]:
    """`total` in `parts` near-equal whole shares: split(10, 3) == [4, 3, 3]."""
    return [total // parts + (1 if n < total % parts else 0) for n in range(parts)]


class Load:
    """Load from locust in child processes: `start()`/`stop()`, or a `with` block, or `run()` at once."""

    def __init__(self, url: str, users: int = 4, seconds: float = 60, max_requests: int | None = None,
                 method: str = "POST", payload=None, body: bytes | None = None, unique: bool = False,
                 ok=(200,), expect=None, collect: str | None = None, csv: str | None = None,
                 processes: int = 1, timeout: float = 10.0, pause: float = 0.0):
        self.url, self.seconds = url, seconds
        processes = max(1, min(processes, users))
        shares = split(users, processes)
        budget = split(max_requests, processes) if max_requests is not None else [None] * processes
        parts = urlsplit(url)
        salt = time.time_ns() % 1_000_000_000  # "unique" rows differ from the last run's too (a shared cache)
        self.plans = [{
            "host": f"{parts.scheme}://{parts.netloc}", "path": parts.path or "/", "method": method,
            "payload": payload, "body": body.decode() if body is not None else None, "unique": unique,
            "ok": list(ok), "expect": expect, "collect": collect, "users": share, "seconds": seconds,
            "max_requests": budget[n], "process": n, "timeout": timeout, "pause": pause, "salt": salt,
            "csv": (csv if processes == 1 else f"{csv}-{n}") if csv else None,
        } for n, share in enumerate(shares)]
        self._children: list[subprocess.Popen] = []
        self._counts = [Counter() for _ in shares]
        self._finals: list[dict | None] = [None] * processes
        self._readers: list[threading.Thread] = []
        self._lock = threading.Lock()
        self.result: Result | None = None

    # ------------------------------------------------------------ the parent's side

    @property
    def statuses(self) -> Counter:
        """Answers so far by status code (or exception name), over all children."""
        with self._lock:
            return sum(self._counts, Counter())

    @property
    def sent(self) -> int:
        return sum(self.statuses.values())

    @property
    def failed(self) -> int:
        ok = set(self.plans[0]["ok"])
        return sum(n for status, n in self.statuses.items() if status not in ok)

    def start(self) -> "Load":
        if importlib.util.find_spec("locust") is None:  # finds it without importing it (and its patching)
            raise RuntimeError("locust is not installed here: `make venv-maintainer` (or venv-notebooks) adds it")
        # Several children begin together, after each has imported locust; one begins when it is ready.
        start_at = time.time() + 1.5 if len(self.plans) > 1 else 0.0
        for n, plan in enumerate(self.plans):
            child = subprocess.Popen([sys.executable, "-m", "labkit.load"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, bufsize=1)
            child.stdin.write(json.dumps({**plan, "start_at": start_at}))
            child.stdin.close()
            self._children.append(child)
            reader = threading.Thread(target=self._read, args=(n, child), daemon=True)
            reader.start()
            self._readers.append(reader)
        return self

    def _read(self, n: int, child: subprocess.Popen) -> None:
        for line in child.stdout:
            if not line.startswith("{"):  # not one of ours (a library printing): show it, as it was meant
                print(line, end="", file=sys.stderr)
                continue
            message = json.loads(line)
            counts = Counter({int(k) if k.isdigit() else k: v for k, v in message["statuses"].items()})
            with self._lock:
                self._counts[n] = counts
                if message.get("final"):
                    self._finals[n] = message

    def wait_for(self, count: int, timeout: float = 60, status: int | str | None = None) -> bool:
        """Wait until `count` requests were answered (or failed), or, given `status`, answered with that
        status; at most `timeout` seconds. (The children report with a lag: a server may already have
        answered more than `sent` says, so "N more after a change" is best asked by its status.)"""
        def seen() -> int:
            return self.sent if status is None else self.statuses[status]

        deadline = time.monotonic() + timeout
        while seen() < count and time.monotonic() < deadline and self.running:
            time.sleep(0.05)
        return seen() >= count

    @property
    def running(self) -> bool:
        return any(child.poll() is None for child in self._children)

    def stop(self) -> Result:
        """Stop sending (the requests in flight finish), wait for the children, merge their results."""
        for child in self._children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        return self.join()

    def join(self, timeout: float | None = None) -> Result:
        """Wait for the children to finish by themselves (duration or request count), then merge."""
        limit = timeout if timeout is not None else self.seconds + START_SECONDS + 30
        for child, reader in zip(self._children, self._readers):
            try:
                child.wait(limit)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(10)
            reader.join(10)
        missing = [n for n, final in enumerate(self._finals) if final is None]
        if missing:
            raise RuntimeError(f"load process(es) {missing} ended without results (exit codes "
                               f"{[self._children[n].returncode for n in missing]})")
        latencies = [ms for final in self._finals for ms in final["latencies_ms"]]
        self.result = Result(
            requests=len(latencies), errors=sum(final["errors"] for final in self._finals),
            seconds=max(final["seconds"] for final in self._finals),
            p50_ms=percentile(latencies, 50), p99_ms=percentile(latencies, 99), p95_ms=percentile(latencies, 95),
            statuses=self.statuses,
            collected=[tuple(item) for final in self._finals for item in final["collected"]],
            client_cpu_seconds=sum(final["cpu_seconds"] for final in self._finals))
        return self.result

    def __enter__(self) -> "Load":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def run(url: str, **options) -> Result:
    """Send the load and wait until it is done (`seconds` or `max_requests`): its Result."""
    return Load(url, **options).start().join()


# ---------------------------------------------------------------- the child (imports locust)

def cpu_now() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _child() -> None:
    plan = json.loads(sys.stdin.read())
    # Imported here, in the child only: locust's import patches this process for gevent.
    import gevent
    from locust import FastHttpUser, constant, task
    from locust.env import Environment
    from locust.exception import StopUser
    from locust.stats import PERCENTILES_TO_REPORT, StatsCSV

    ok, expect, collect = set(plan["ok"]), plan["expect"], plan["collect"]
    state = {"issued": 0, "errors": 0, "stopping": False, "spawned": False}
    statuses: Counter = Counter()
    latencies: list[float] = []
    collected: list = []

    def body() -> tuple[str, dict]:
        """The next request's body: the fixed one, or the payload with its first number made unique."""
        if plan["unique"]:
            payload = json.loads(json.dumps(plan["payload"]))
            number = plan["salt"] + plan["process"] * 10_000_000 + state["issued"]
            payload["data"][0][0] = round(4.0 + (number % 2_000_000_000) * 1e-9, 9)
            return json.dumps(payload), {"Content-Type": "application/json"}
        if plan["body"] is not None:
            return plan["body"], {"Content-Type": "application/json"} if plan["body"] else {}
        if plan["payload"] is not None:
            return json.dumps(plan["payload"]), {"Content-Type": "application/json"}
        return "", {}

    def json_of(response):
        try:
            return response.json()
        except ValueError:
            return None

    class Client(FastHttpUser):
        host = plan["host"]
        wait_time = constant(plan["pause"])
        network_timeout = connection_timeout = plan["timeout"]

        @task
        def send(self) -> None:
            if state["stopping"] or (plan["max_requests"] is not None and state["issued"] >= plan["max_requests"]):
                raise StopUser()
            data, headers = body()
            state["issued"] += 1
            sent_at = time.time()
            with self.client.request(plan["method"], plan["path"], data=data, headers=headers,
                                     catch_response=True) as response:
                status = response.status_code or (type(response.error).__name__ if response.error else "no answer")
                answer = json_of(response) if status in ok and (expect is not None or collect) else None
                good = status in ok and (expect is None or answer == expect) \
                    and (not collect or isinstance(answer, dict) and collect in answer)
                if good:
                    response.success()
                    if collect:
                        collected.append((answer[collect], sent_at))
                else:
                    response.failure(f"answered {status}: {(response.text or '')[:200]}")
                response.request_meta["context"] = {"status": status, "good": good}  # for count() below

    environment = Environment(user_classes=[Client], catch_exceptions=False)

    @environment.events.request.add_listener
    def count(response_time, context, **_):
        statuses[context.get("status", "no answer")] += 1
        if context.get("good"):
            latencies.append(response_time)
        else:
            state["errors"] += 1

    @environment.events.spawning_complete.add_listener
    def spawned(user_count, **_):
        state["spawned"] = True

    def report(final: bool = False, seconds: float = 0.0) -> None:
        message = {"statuses": {str(k): v for k, v in statuses.items()}}
        if final:
            message.update(final=True, seconds=seconds, errors=state["errors"], latencies_ms=latencies,
                           collected=collected, cpu_seconds=cpu_now() - state["cpu_at_start"])
        print(json.dumps(message), flush=True)

    def reporter() -> None:
        while True:
            report()
            gevent.sleep(REPORT_EVERY)

    def stop(*_) -> None:
        state["stopping"] = True

    gevent.signal_handler(signal.SIGTERM, stop)
    runner = environment.create_local_runner()
    gevent.sleep(max(0.0, plan["start_at"] - time.time()))
    started, state["cpu_at_start"] = time.monotonic(), cpu_now()
    runner.start(plan["users"], spawn_rate=plan["users"])  # all users at once: a closed loop from the start
    ticker = gevent.spawn(reporter)
    deadline = started + plan["seconds"]
    while not state["stopping"] and time.monotonic() < deadline and not (state["spawned"] and runner.user_count == 0):
        if plan["max_requests"] is not None and sum(statuses.values()) >= plan["max_requests"]:
            break
        gevent.sleep(0.01)
    took = time.monotonic() - started
    state["stopping"] = True  # each user ends at its next request, so the ones in flight are counted
    finish_by = time.monotonic() + plan["timeout"] + 1
    while runner.user_count and time.monotonic() < finish_by:
        gevent.sleep(0.01)
    runner.quit()
    ticker.kill()
    if plan["csv"]:
        os.makedirs(os.path.dirname(plan["csv"]) or ".", exist_ok=True)
        writer = StatsCSV(environment, PERCENTILES_TO_REPORT)  # what `locust --csv` writes at its end
        with open(f"{plan['csv']}_stats.csv", "w", newline="") as stats_file:
            writer.requests_csv(csv.writer(stats_file))
        with open(f"{plan['csv']}_failures.csv", "w", newline="") as failures_file:
            writer.failures_csv(csv.writer(failures_file))
    report(final=True, seconds=took)


if __name__ == "__main__":
    _child()
