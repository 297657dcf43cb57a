"""Benchmark of lab 04's synchronous service: `python -m labkit.bench_sync` (make bench-sync).

It builds and starts, on 127.0.0.1 ports:
  - the lab's service (solutions/04-flask-serving, exercises/ in a student release: gunicorn, 2 workers x 4 threads), fast model, no cache;
  - the same image with the slow model (MODEL_DELAY_MS) behind memcached:1.6, for cache hit vs miss;
  - the lecture's Flask development server (labs/01-docker/lecture-server), a baseline;
and drives them with locust in separate client processes (labkit.load: a client keeps its connection
where the server allows it, as gunicorn's threaded workers do; the dev server closes it after each
answer, so there every request opens its own, as `requests.post` without a session does). In the same run it measures the ceilings:
the same server's GET /health (the HTTP stack alone) and an in-process model.predict loop (the
model alone). One table, ratios against the baselines, then every container is removed.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import docker

from labkit import bench_batch, load
from labkit.bench_stages import Stage, cpu_seconds, machine_seconds
from labkit.bench_targets import TARGETS, judge
from labkit.engine import builder_env
from labkit.load import Result
from labkit.resources import RUN_LABEL, new_run_id, remove_labelled, unique_name
from labkit.services import service_tree

ROOT = Path(__file__).resolve().parent.parent
SERVICE_CONTEXT = service_tree() / "04-flask-serving"  # a student release: the student's own
LECTURE_CONTEXT = ROOT / "labs" / "01-docker" / "lecture-server"
SERVICE_TAG, LECTURE_TAG = "labkit-bench/sync-service:latest", "labkit-bench/lecture-server:latest"
ROW = [5.1, 3.5, 1.4, 0.2]
SLOW_MS = 20


# ---------------------------------------------------------------- the load client

def http_request(method: str, path: str, body: bytes = b"") -> bytes:
    head = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


def one_request(port: int, payload: bytes, timeout: float = 10.0) -> tuple[int, bytes]:
    """Send one request on a new connection, read until the server closes; (status, head)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(payload)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    data = b"".join(chunks)
    status = int(data[9:12]) if data.startswith(b"HTTP/") else 0
    return status, data.split(b"\r\n\r\n", 1)[0]


def run_load(port: int, concurrency: int, duration: float, method: str = "POST", path: str = "/predict",
             body: bytes = b"", unique: bool = False, processes: int = 2) -> Result:
    """`concurrency` closed-loop locust users spread over client processes, for `duration` seconds;
    `unique`: a single row nobody sent before in every request (a guaranteed cache miss)."""
    payload = {"data": [ROW]} if unique else None
    return load.run(f"http://127.0.0.1:{port}{path}", users=concurrency, seconds=duration, method=method,
                    body=None if unique else body, payload=payload, unique=unique, processes=processes)


# ---------------------------------------------------------------- containers

def build(client: docker.DockerClient, context: Path, tag: str) -> None:
    print(f"building {tag} from {context.relative_to(ROOT)} ...", flush=True)
    for chunk in client.api.build(path=str(context), tag=tag, rm=True, forcerm=True, decode=True):
        if "error" in chunk:
            raise SystemExit(f"build of {context} failed: {chunk['error']}")


def wait_healthy(port: int, path: str = "/health", timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"nothing answered on 127.0.0.1:{port}{path} within {timeout:.0f} s")


def start(client, run_id: str, image: str, name: str, network: str, **env) -> int:
    """Start a labelled container with port 8000 published on loopback; returns the host port."""
    container = client.containers.run(image, name=unique_name(run_id, name), detach=True, network=network,
                                      labels={RUN_LABEL: run_id}, environment=env,
                                      ports={"8000/tcp": ("127.0.0.1", None)})
    container.reload()
    return int(container.ports["8000/tcp"][0]["HostPort"])


# ---------------------------------------------------------------- in-process ceiling

def in_process_rates(seconds: float = 2.0) -> tuple[float, float]:
    """(single-row predicts per second, rows per second in 1,000-row batches) of the model itself."""
    sys.path.insert(0, str(SERVICE_CONTEXT))
    try:
        from train import train
        from service.model import load_model
    finally:
        sys.path.pop(0)
    with tempfile.TemporaryDirectory() as folder:
        train(Path(folder))
        model = load_model(folder)

    def rate(rows) -> float:
        count, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds and count < 1_000_000:
            model.predict(rows)
            count += 1
        return count * len(rows) / (time.perf_counter() - started)

    return rate([ROW]), rate([ROW] * 1000)


# ---------------------------------------------------------------- the run

@dataclass
class SyncRun:
    results: dict[tuple[str, int], Result]  # by (what, concurrency)
    single_rate: float  # in-process single-row predicts per second
    rows_rate: float  # in-process rows per second in 1,000-row batches
    batch: tuple[list[Stage], str]  # where a 1,000-row request's CPU goes, and the ceiling


def run(duration: float = 5.0, log=print, report=None) -> SyncRun:
    """Build, start and measure everything. `report(sync_run)`, if given, runs before the containers are
    removed. Every container and network of the run is removed, also on failure."""
    client = docker.from_env(timeout=300)
    run_id = f"bench-{new_run_id()}"
    began = time.monotonic()
    network = None
    try:
        build(client, SERVICE_CONTEXT, SERVICE_TAG)
        build(client, LECTURE_CONTEXT, LECTURE_TAG)
        network = client.networks.create(unique_name(run_id, "net"), labels={RUN_LABEL: run_id})
        client.containers.run("memcached:1.6", name=unique_name(run_id, "memcached"), detach=True,
                              network=network.name, labels={RUN_LABEL: run_id})
        memcached = unique_name(run_id, "memcached")
        ports = {
            "service": start(client, run_id, SERVICE_TAG, "service", network.name),
            "slow": start(client, run_id, SERVICE_TAG, "slow", network.name, MODEL_DELAY_MS=str(SLOW_MS),
                          CACHE_URL=f"memcached://{memcached}:11211"),
            "lecture": start(client, run_id, LECTURE_TAG, "lecture", network.name),
        }
        for port in ports.values():
            wait_healthy(port)
        log(f"containers up after {time.monotonic() - began:.0f} s; {duration:.0f} s per measurement")

        single = json.dumps({"data": [ROW]}).encode()
        batch = json.dumps({"data": [ROW] * 1000}).encode()
        results: dict[tuple[str, int], Result] = {}
        service = client.containers.get(unique_name(run_id, "service"))
        server_ms, machine = None, (None, None)
        plan = [(what, c) for c in (1, 8, 64) for what in ("predict", "health", "lecture")]
        plan += [("batch", 1), ("batch", 8), ("slow-miss", 8), ("slow-hit", 8)]
        for what, concurrency in plan:
            kwargs = {
                "predict": dict(port=ports["service"], body=single),
                "health": dict(port=ports["service"], method="GET", path="/health"),
                "lecture": dict(port=ports["lecture"], body=single),
                "batch": dict(port=ports["service"], body=batch),
                "slow-miss": dict(port=ports["slow"], unique=True),
                "slow-hit": dict(port=ports["slow"], body=single),
            }[what]
            if what == "slow-hit":  # the one request is cached before the measurement
                one_request(ports["slow"], http_request("POST", "/predict", single))
            breakdown_run = (what, concurrency) == ("batch", 8)  # the CPU readings only around this one
            if breakdown_run:
                cpu_before, machine_before = cpu_seconds(service), machine_seconds()
            results[what, concurrency] = run_load(concurrency=concurrency, duration=duration, **kwargs)
            r = results[what, concurrency]
            if breakdown_run:
                cpu_after, machine = cpu_seconds(service), (machine_before, machine_seconds())
                if None not in (cpu_before, cpu_after) and r.requests:
                    server_ms = 1000 * (cpu_after - cpu_before) / r.requests
            log(f"  {what:<10} c={concurrency:<3} {r.rps:9.1f} req/s  p50 {r.p50_ms:7.2f} ms  "
                f"p99 {r.p99_ms:7.2f} ms  errors {r.errors}")
        single_rate, rows_rate = in_process_rates()
        batch = results["batch", 8]
        log("  where a 1,000-row request's CPU goes: its steps, timed inside the service's container ...")
        measured = SyncRun(results, single_rate, rows_rate, bench_batch.breakdown(
            bench_batch.inside(service), server_ms, 1000 * batch.client_cpu_seconds / max(batch.requests, 1),
            rows_rate, machine=machine, requests=batch.requests))
        if report:
            report(measured)
        return measured
    finally:
        removed = remove_labelled(client, run_id)
        log(f"removed {len(removed)} containers/networks of the benchmark; total {time.monotonic() - began:.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="lab 04 benchmark: sync serving against its ceilings")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measurement (default 5)")
    args = parser.parse_args(argv)
    run(args.duration, log=lambda line: print(line, flush=True), report=print_table)
    return 0


# What each measurement is, in the tables (also labkit.bench's).
LABELS = {
    "predict": "/predict 1 row (gunicorn, no cache)",
    "health": "/health, same server (HTTP ceiling)",
    "lecture": "/predict 1 row, lecture's Flask dev server",
    "batch": "/predict 1,000 rows (gunicorn, no cache)",
    "slow-miss": f"slow model ({SLOW_MS} ms), cache MISS",
    "slow-hit": f"slow model ({SLOW_MS} ms), cache HIT",
}


def print_table(measured: SyncRun) -> None:
    results, single_rate, rows_rate = measured.results, measured.single_rate, measured.rows_rate
    lines = ["", "lab 04 sync serving benchmark (gunicorn, 2 workers x 4 threads; client: separate processes, "
                 "locust, 127.0.0.1)", ""]
    lines.append(f"{'what':<44} {'conc':>4} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}")
    names = LABELS
    for (what, concurrency), r in results.items():
        lines.append(f"{names[what]:<44} {concurrency:>4} {r.rps:>9.1f} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f} {r.errors:>6}")
    lines.append(f"{'in-process model.predict, 1 row':<44} {'':>4} {single_rate:>9.1f}")
    lines.append(f"{'in-process model.predict, 1,000 rows (rows/s)':<44} {'':>4} {rows_rate:>9.0f}")
    lines.append("")
    lines.append("ratios")
    for c in (1, 8, 64):
        p, h, l = results["predict", c], results["health", c], results["lecture", c]
        lines.append(f"  c={c:<3} /predict vs /health {p.rps / h.rps:6.0%}   vs lecture dev server "
                     f"{p.rps / l.rps:5.1f}x   vs in-process predict {p.rps / single_rate:6.1%}")
    for c in (1, 8):
        b = results["batch", c]
        lines.append(f"  c={c:<3} 1,000-row batches: {b.rps * 1000:,.0f} rows/s = "
                     f"{b.rps * 1000 / rows_rate:.1%} of in-process predict ({rows_rate:,.0f} rows/s)")
    miss, hit = results["slow-miss", 8], results["slow-hit", 8]
    lines.append(f"  c=8   slow model: cache HIT {hit.rps / miss.rps:.1f}x the req/s of a MISS, "
                 f"p50 {hit.p50_ms:.2f} vs {miss.p50_ms:.2f} ms")
    rows = {f"sync:{what}:c={c}": SimpleNamespace(per_second=r.rps, p50_ms=r.p50_ms) for (what, c), r in results.items()}
    rows["sync:model-rows"] = SimpleNamespace(per_second=rows_rate, p50_ms=None)
    judged = [judge(key, rows) for key in TARGETS if key in rows]
    lines.append("targets (labkit/bench_targets.py): " + "; ".join(
        f"{text} {'✓' if met else '✗'}" for text, met in judged))
    steps, ceiling = measured.batch
    lines += ["", "where the CPU of one 1,000-row request goes (ms per request; labkit/bench_batch.py)"]
    lines += [f"  {step.name:<24} {'' if step.ms is None else f'{step.ms:7.3f}':>7}  {step.what}" for step in steps]
    lines.append(f"  {ceiling}")
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    os.environ.update(builder_env())
    raise SystemExit(main())
