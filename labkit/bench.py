"""The week's benchmarks in one table: `python -m labkit.bench` (make bench).

Three suites, run one after the other (each alone on the machine), then one table:
  sync      lab 04's service alone (labkit.bench_sync): /predict, /health, the lecture's dev server,
            1,000-row batches, the slow model's cache MISS and HIT, the in-process model;
  async     lab 05 (labkit.bench_async): POST /predict against POST /tasks -> SUCCESS with a worker of
            1 and of 2 processes;
  capstone  the root docker-compose.yaml through its gateway (compose project labkit-bench-capstone on
            free loopback ports): /predict with the cache answering (HIT) at a few concurrencies and with
            unique rows (MISS), /health, and async tasks/s through the gateway.
Every suite removes what it started, also on failure (the capstone: `docker compose down -v`).
The table has a target column (labkit/bench_targets.py: ✓ met, ✗ missed). Where a target is missed, the
tables after it say where the time goes: the CPU of one 1,000-row /predict, step by step
(labkit/bench_batch.py), and the stages of one async task and the CPU per task of each part, in lab 05 and
in the capstone (labkit/bench_stages.py), each with the ceiling that CPU allows on the machine's cores.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import docker
import redis
import requests

from labkit import bench_async, bench_stages, bench_sync
from labkit.bench_targets import judge
from labkit.engine import builder_env
from labkit.resources import free_port

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "labkit-bench-capstone"
WARM_UP_SECONDS = 5  # of load on the capstone before its measurements, not counted
STAGE_SAMPLES = 30  # tasks, one at a time, for the stages of one task
CPU_BURST = 500  # tasks at once, for the CPU per task
LECTURE_REQUEST = {"data": [[5.1, 3.5, 1.4, 0.2], [2.4, 0.1, 5.3, 4.2]]}
# For the benchmark only: publish the result backend on loopback, so task completion times come from
# its date_done, as in labkit.bench_async, not from a poll interval.
OVERRIDE = """services:
  results:
    ports: ["127.0.0.1::6379"]
"""


@dataclass
class Line:
    """One row of the combined table; `key` names it for the targets (labkit.bench_targets)."""
    key: str
    suite: str
    what: str
    load: str
    per_second: float
    p50_ms: float | None = None
    p99_ms: float | None = None
    errors: int | None = None


def log(line: str) -> None:
    print(line, flush=True)


# ---------------------------------------------------------------- the suites

def sync_suite(duration: float, batch: list) -> list[Line]:
    """The sync rows; `batch` gets the breakdown of a 1,000-row request (labkit.bench_batch)."""
    measured = bench_sync.run(duration, log=log)
    results, single_rate, rows_rate = measured.results, measured.single_rate, measured.rows_rate
    batch.append(measured.batch)
    lines = [Line(f"sync:{what}:c={c}", "sync", bench_sync.LABELS[what], f"c={c}", r.rps, r.p50_ms, r.p99_ms,
                  r.errors) for (what, c), r in results.items()]
    lines.append(Line("sync:model-1", "sync", "in-process model.predict, 1 row", "1 thread", single_rate))
    lines.append(Line("sync:model-rows", "sync", "in-process model.predict, 1,000 rows (rows/s)", "1 thread",
                      rows_rate))
    return lines


def measure_stages(target, where: str, parts: dict[str, list], clients: int,
                   stages: dict[str, list[bench_stages.Stage]]) -> None:
    """The stages of one task, then the CPU per task of each part (name -> containers) in a burst."""
    log(f"  {where}: the stages of one task, {STAGE_SAMPLES} tasks one at a time; CPU per task in "
        f"{CPU_BURST} more ...")
    try:
        measured = bench_stages.measure(target, STAGE_SAMPLES)
        measured += bench_stages.cpu_per_task(
            parts, lambda: tasks_and_client_cpu(
                bench_async.measure_async(target, 2, CPU_BURST, clients, expected=target.expected)))
    except Exception as error:  # noqa: BLE001 - the suite's own rows are measured already: keep them
        log(f"  the stages of {where} failed: {type(error).__name__}: {error}")
        return
    stages[where] = measured


def tasks_and_client_cpu(row: bench_async.Row) -> tuple[int, float]:
    return row.n, row.client_cpu_seconds


def async_suite(tasks: int, clients: int, stages: dict[str, list[bench_stages.Stage]]) -> list[Line]:
    def with_worker(bench, processes: int) -> None:
        if processes == 2:
            worker = bench.client.containers.get(bench.name(f"worker-{processes}"))
            bench.expected = None  # measure_async's default: lab 05's result
            measure_stages(bench, "lab 05", {"HTTP front": [bench.api], "worker": [worker],
                                            "broker + results": [bench.redis]}, clients, stages)

    rows = bench_async.run(tasks, clients, log=log, with_worker=with_worker)
    return [Line(f"async:{r.key}", "async", f"{r.path} (n={r.n})",
                 f"c={clients}, {r.processes} {'gunicorn' if r.path.startswith('sync') else 'worker'} proc",
                 r.per_second, r.p50_ms, r.p99_ms, 0) for r in rows] + one_task_line("async", "lab 05", stages)


def one_task_line(suite: str, where: str, stages: dict[str, list[bench_stages.Stage]]) -> list[Line]:
    """A task's latency when it waits behind no other (the stages' "end to end"): the latency target's
    row. A burst's median task waits behind half the burst, so its p50 measures the queue, not the path."""
    ms = next((s.ms for s in stages.get(where, []) if s.name == "end to end"), None)
    if not ms:
        return []
    return [Line(f"{suite}:one-task", suite, "async POST /tasks -> result read, one task at a time",
                 "c=1, 2 worker proc", 1000 / ms, ms)]



class Capstone:
    """The root docker-compose.yaml under its own project name, ports and an override file."""

    def __init__(self, override: Path) -> None:
        self.env = {**os.environ, "GATEWAY_PORT": str(free_port()), "FLOWER_PORT": str(free_port()),
                    **builder_env()}
        self.files = ["-f", "docker-compose.yaml", "-f", str(override)]
        self.port = int(self.env["GATEWAY_PORT"])
        self.base = f"http://127.0.0.1:{self.port}"

    def compose(self, *args: str, timeout: float = 600) -> str:
        result = subprocess.run(["docker", "compose", "-p", PROJECT, *self.files, *args], cwd=ROOT, env=self.env,
                                capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"docker compose {' '.join(args)} failed:\n{result.stderr[-1500:]}")
        return result.stdout

    def containers(self, *services: str) -> list:
        """The running containers of these services (docker SDK objects)."""
        client = docker.from_env()
        return [client.containers.get(cid) for cid in self.compose("ps", "--quiet", *services).split()]

    def down(self) -> None:
        self.compose("down", "--volumes", "--remove-orphans", "--timeout", "5")

    def up(self) -> None:
        self.compose("up", "--detach", "--build", "--wait", "--wait-timeout", "240", timeout=900)

    def works(self) -> bool:
        """The lecture's two calls through the gateway: [0, 2] synchronously and from a finished task."""
        try:
            if requests.post(f"{self.base}/predict", json=LECTURE_REQUEST, timeout=10).json().get("result") != [0, 2]:
                return False
            task_id = requests.post(f"{self.base}/tasks", json=LECTURE_REQUEST, timeout=10).json()["task_id"]
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                task = requests.get(f"{self.base}/tasks/{task_id}", timeout=10).json()
                if task.get("status") == "SUCCESS":
                    return task.get("result") == [0, 2]
                time.sleep(0.2)
        except (requests.RequestException, ValueError, KeyError):
            pass
        return False

    def start(self) -> None:
        """Up and working; one fresh retry (a swarm started elsewhere can break a running stack's DNS)."""
        for attempt in (1, 2):
            self.down()
            try:
                self.up()
            except RuntimeError as error:
                if attempt == 2:
                    raise
                log(f"  {error}; once more from scratch")
                continue
            if self.works():
                return
            log("  the service did not answer [0, 2] through the gateway; once more from scratch")
        raise RuntimeError("the capstone did not come up working twice in a row")


def capstone_suite(duration: float, tasks: int, clients: int, stages: dict[str, list[bench_stages.Stage]]) -> list[Line]:
    with tempfile.TemporaryDirectory(prefix="labkit-bench-") as folder:
        override = Path(folder) / "publish-results.yaml"
        override.write_text(OVERRIDE)
        capstone = Capstone(override)
        began = time.monotonic()
        try:
            log(f"building and starting the root docker-compose.yaml as project {PROJECT} ...")
            capstone.start()
            log(f"capstone up and working after {time.monotonic() - began:.0f} s; gateway on {capstone.base}")
            single = json.dumps({"data": [bench_sync.ROW]}).encode()
            bench_sync.one_request(capstone.port, bench_sync.http_request("POST", "/predict", single))  # now cached
            hit, miss = "/predict 1 row, cache HIT", "/predict 1 row, unique rows: cache MISS"
            # MISS and HIT at c=8 back to back, after a warm-up: the same conditions for both. (A HIT
            # once came out slower than a MISS: the gateway's TIME_WAIT connections, labs/06-capstone.)
            plan = [("hit", hit, 1, dict(body=single)), ("miss", miss, 8, dict(unique=True)),
                    ("hit", hit, 8, dict(body=single)), ("hit", hit, 64, dict(body=single)),
                    ("health", "/health (gateway + api, HTTP ceiling)", 8, dict(method="GET", path="/health"))]
            bench_sync.run_load(capstone.port, 8, WARM_UP_SECONDS, method="GET", path="/health")
            lines = []
            for key, what, concurrency, kwargs in plan:
                r = bench_sync.run_load(capstone.port, concurrency, duration, **kwargs)
                log(f"  {what:<42} c={concurrency:<3} {r.rps:9.1f} req/s  p50 {r.p50_ms:7.2f} ms  "
                    f"p99 {r.p99_ms:7.2f} ms  errors {r.errors}")
                lines.append(Line(f"capstone:{key}:c={concurrency}", "capstone", what, f"c={concurrency}", r.rps,
                                  r.p50_ms, r.p99_ms, r.errors))
            results_port = int(capstone.compose("port", "results", "6379").strip().rsplit(":", 1)[1])
            target = SimpleNamespace(base=capstone.base, store=redis.Redis(port=results_port, db=1), expected=[0, 2])
            log(f"  async: {tasks} x POST /tasks through the gateway, the compose worker (2 processes) ...")
            row = bench_async.measure_async(target, 2, tasks, clients, expected=[0, 2])
            lines.append(Line("capstone:tasks", "capstone", f"async POST /tasks -> SUCCESS (n={tasks})",
                              f"c={clients}, 2 worker proc",
                              row.per_second, row.p50_ms, row.p99_ms, 0))
            parts = {"HTTP front": capstone.containers("gateway", "tasks-api"), "worker": capstone.containers("worker"),
                     "broker + results": capstone.containers("queue", "results")}
            measure_stages(target, "capstone", parts, clients, stages)
            return lines + one_task_line("capstone", "capstone", stages)
        finally:
            capstone.down()
            log(f"capstone removed (down -v); {time.monotonic() - began:.0f} s")


# ---------------------------------------------------------------- the table

def number(value: float | None, digits: int = 2) -> str:
    return "" if value is None else f"{value:,.{digits}f}"


def markdown_table(header: list[str], rows: list[list[str]], right: set[int]) -> str:
    """A Markdown table with aligned columns; the columns in `right` right-aligned."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows)]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(cell.rjust(w) if n in right else cell.ljust(w)
                                 for n, (cell, w) in enumerate(zip(cells, widths))) + " |"

    rule = "|" + "|".join("-" * (w + 1) + (":" if n in right else "-") for n, w in enumerate(widths)) + "|"
    return "\n".join([line(header), rule, *map(line, rows)])


def table(lines: list[Line]) -> str:
    """The one table: every measurement, and the target of the rows that have one, met (✓) or not (✗)."""
    measured = {line.key: line for line in lines}
    rows = []
    for l in lines:
        target, met = judge(l.key, measured)
        rows.append([l.suite, l.what, l.load, number(l.per_second, 1), number(l.p50_ms, 2), number(l.p99_ms, 2),
                     number(l.errors, 0), target, {True: "✓", False: "✗", None: ""}[met]])
    header = ["suite", "measurement", "load", "per second", "p50 ms", "p99 ms", "errors", "target", ""]
    return markdown_table(header, rows, right={3, 4, 5, 6})


def stages_table(stages: dict[str, list[bench_stages.Stage]]) -> str:
    """The second table: the stages of one async task (median ms), a column per service measured."""
    where = list(stages)
    first = stages[where[0]]
    by_name = {w: {stage.name: stage.ms for stage in stages[w]} for w in where}
    rows = [[stage.name, stage.what, *(number(by_name[w].get(stage.name)) for w in where)] for stage in first]
    return markdown_table(["stage", "from -> to", *(f"{w} ms" for w in where)], rows,
                          right=set(range(2, 2 + len(where))))


def task_ceilings(stages: dict[str, list[bench_stages.Stage]], cores: int | None = None) -> list[str]:
    """Per service: the CPU rows' sum, what one task costs the machine, and the tasks/s its cores allow."""
    cores = cores or os.cpu_count() or 1
    lines, ceilings = [], {}
    for where, measured in stages.items():
        cpu = {stage.name: stage.ms for stage in measured if stage.name.startswith("CPU: ")}
        if not cpu or None in cpu.values():
            continue
        total = sum(cpu.values())
        ceilings[where] = cores * 1000 / total
        parts = " + ".join(f"{name[5:]} {ms:.2f}" for name, ms in cpu.items())
        line = (f"{where}: a task costs {total:.2f} ms of CPU ({parts}): {cores} cores run at most "
                f"{ceilings[where]:,.0f} tasks/s, with every core busy on tasks only")
        other = next((stage.ms for stage in measured if stage.name == "CPU elsewhere"), None)
        if other is not None:  # the kernel's networking, docker-proxy: work the tasks cause, no process is charged
            line += (f"; with the machine's other busy CPU (CPU elsewhere) {total + other:.2f} ms: at most "
                     f"{cores * 1000 / (total + other):,.0f} tasks/s")
        lines.append(line + ".")
    first, *others = list(ceilings) or [None]
    for where in others:  # what more CPU per task allows, before any measured tasks/s
        lines.append(f"{where}'s ceiling is {ceilings[where] / ceilings[first]:.0%} of {first}'s.")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per req/s measurement (default 5)")
    parser.add_argument("--tasks", type=int, default=1000, help="requests / tasks per async measurement (default 1000)")
    parser.add_argument("--clients", type=int, default=8, help="client threads of the async measurements (default 8)")
    parser.add_argument("--suites", default="sync,async,capstone", help="which, comma-separated (default all three)")
    args = parser.parse_args(argv)
    stages: dict[str, list[bench_stages.Stage]] = {}
    batch: list[tuple[list[bench_stages.Stage], str]] = []
    suites = {
        "sync": lambda: sync_suite(args.duration, batch),
        "async": lambda: async_suite(args.tasks, args.clients, stages),
        "capstone": lambda: capstone_suite(args.duration, args.tasks, args.clients, stages),
    }
    chosen = [name.strip() for name in args.suites.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(suites))
    if unknown:
        parser.error(f"unknown suite(s): {', '.join(unknown)}; choose from {', '.join(suites)}")
    started = time.monotonic()
    lines: list[Line] = []
    failed: list[str] = []
    for name in chosen:
        log(f"== {name} ==")
        try:
            lines += suites[name]()
        except Exception as error:  # noqa: BLE001 - report it, run the other suites, exit non-zero
            failed.append(f"{name}: {type(error).__name__}: {error}")
            log(f"the {name} suite failed: {error}")
    print()
    print(table(lines))
    print(f"""
sync and capstone /predict, /health: a closed loop of c locust users (labkit.load, separate client processes;
a connection is kept where the server keeps it, {args.duration:.0f} s each). Async: n tasks submitted at once from c threads; per second
= tasks from the first submit to the last SUCCESS; latency = submit -> SUCCESS (includes waiting in the queue:
the median task of a burst of n waits behind n/2 others, so its p50 is at least n/2 / per second; the latency
target is judged on "one task at a time", the path without a queue, from the second table's "end to end").
All on one machine: the clients share its cores with the servers. Targets (labkit/bench_targets.py): mostly
ratios to another row of the same run, which carry over between machines better than absolute numbers.
Whole run: {time.monotonic() - started:.0f} s.""")
    for steps, ceiling in batch:
        print()
        print(markdown_table(["1,000-row /predict: step", "what", "ms of CPU"],
                             [[step.name, step.what, number(step.ms, 3)] for step in steps], right={2}))
        print(f"\n{ceiling}")
    if stages:
        print()
        print(stages_table(stages))
        print(f"""
One task at a time on an idle service, the median of {STAGE_SAMPLES} (labkit/bench_stages.py says how each stage
is timed). Polling pays half a poll interval on average; ?wait= answers when the result is published.""")
        for line in task_ceilings(stages):
            print(line)
    for failure in failed:
        print(f"FAILED {failure}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    os.environ.update(builder_env())
    sys.exit(main())
