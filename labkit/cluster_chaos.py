"""`make chaos-cluster`: a worker node drained, then killed, under load, on the cluster of `make up-cluster`.

    1. drain   `docker node update --availability drain NODE` while clients call /predict and async tasks run:
               the node's replicas are stopped and started on the other nodes; no request may fail.
    2. kill    the node's container killed outright (a machine losing power) under the same load: the
               manager marks the node Down and starts its replicas elsewhere; every async task accepted
               before the kill finishes (RabbitMQ gives a dead worker's unacknowledged tasks back once it
               declares its connection dead: the AMQP heartbeat).
    3. back    the node boots again from its disk and rejoins the swarm by itself.

It prints a table: requests sent and failed, tasks sent and lost, the time each step took to recover.
The load is `labkit.load`'s `Load` (locust), as in `make chaos`.
"""
from __future__ import annotations

import sys
import time
from collections import Counter

from labkit.cluster import STACK, Cluster, ClusterError, current, log
from labkit.node import NodeError
from labkit.stack import converged, docker
from labkit.testing import wait_until
from labkit.load import Load
from tests.capstone.test_faults import LECTURE, states, submit  # run from the repository's root (the Makefile does)

TASKS = 60
TASK_DELAY = 0.2  # seconds each task takes: some run while the node goes
MOVE_TIMEOUT = 180
TASKS_TIMEOUT = 300  # a dead worker's tasks come back after the broker's heartbeat gives up on it (~2 min)
REQUESTS_AFTER = 200  # requests sent after the cluster recovered, to see it serve
MAX_REQUESTS = 100_000


def running_tasks(cluster: Cluster, node: str) -> list[str]:
    out = cluster.manager.docker("node", "ps", node, "--filter", "desired-state=running", "--format", "{{.Name}}")
    return out.stdout.split() if out is not None and out.returncode == 0 else []


def busiest_worker(cluster: Cluster) -> str:
    workers = [node.name for node in cluster.workers()]
    if not workers:
        raise ClusterError("the cluster has no worker node: `make cluster-up` (3 nodes) first")
    return max(workers, key=lambda name: len(running_tasks(cluster, name)))


def node_row(cluster: Cluster, name: str) -> dict:
    return next((row for row in cluster.node_table() if row["hostname"] == name), {"status": "?", "id": "?"})


def runs_without(node: str, host: str) -> bool:
    """Every service of the stack runs all its replicas on nodes other than `node`. (`docker service ls`
    cannot tell: while a node is Down its tasks still count as running, nobody being there to say otherwise.)"""
    wanted = {name: int(replicas.split("/")[1]) for name, replicas in
              (line.split() for line in docker("stack", "services", STACK, "--format", "{{.Name}} {{.Replicas}}",
                                               host=host).splitlines())}
    rows = [line.split(maxsplit=2) for line in docker("stack", "ps", STACK, "--filter", "desired-state=running",
                                                      "--format", "{{.Name}} {{.Node}} {{.CurrentState}}",
                                                      host=host).splitlines()]
    running = Counter(name.rsplit(".", 1)[0] for name, on, state in rows if on != node and state.startswith("Running"))
    return all(running[name] >= count for name, count in wanted.items())


def lost(base: str, task_ids: list[str], since: float) -> tuple[int, float]:
    """(tasks not finished with [0, 2] within TASKS_TIMEOUT, seconds from `since` until all were)."""
    wait_until(lambda: all(state == "DONE" for state in states(base, task_ids).values()), TASKS_TIMEOUT, interval=1)
    final = Counter(states(base, task_ids).values())
    return len(task_ids) - final["DONE"], time.monotonic() - since


def drain(cluster: Cluster, base: str, host: str) -> dict:
    node = busiest_worker(cluster)
    before = running_tasks(cluster, node)
    task_ids = [submit(base, delay=TASK_DELAY) for _ in range(TASKS)]
    drained = next(n for n in cluster.workers() if n.name == node)

    def moved() -> bool:  # the node's engine runs none of the stack's containers, the others run them all
        left = drained.docker("ps", "-q", "--filter", f"label=com.docker.stack.namespace={STACK}")
        return left is not None and not left.stdout.strip() and runs_without(node, host)

    with Load(f"{base}/predict", users=4, seconds=MOVE_TIMEOUT + 120, max_requests=MAX_REQUESTS, payload=LECTURE) as load:
        load.wait_for(50)
        log(f"drain {node} ({len(before)} replicas: {', '.join(before)}) under load")
        started = time.monotonic()
        cluster.manager.docker("node", "update", "--availability", "drain", node)
        done = wait_until(moved, MOVE_TIMEOUT, interval=0.2)
        took = time.monotonic() - started
        load.wait_for(load.sent + REQUESTS_AFTER)
    tasks_lost, tasks_s = lost(base, task_ids, started)
    cluster.manager.docker("node", "update", "--availability", "active", node)
    log(f"{node}: Active again (swarm does not move running replicas back; new ones may land there)")
    return {"step": f"drain {node}", "sent": load.sent, "failed": load.failed, "tasks": TASKS, "lost": tasks_lost,
            "recovered_s": took if done else None, "detail": f"replicas moved in {took:.1f}s; "
            f"every task done {tasks_s:.0f}s after the drain; statuses {dict(load.statuses)}"}


def kill(cluster: Cluster, base: str, host: str) -> tuple[dict, str]:
    node = busiest_worker(cluster)
    before = running_tasks(cluster, node)
    task_ids = [submit(base, delay=TASK_DELAY) for _ in range(TASKS)]
    with Load(f"{base}/predict", users=4, seconds=MOVE_TIMEOUT + 120, max_requests=MAX_REQUESTS, payload=LECTURE) as load:
        wait_until(lambda: "STARTED" in states(base, task_ids).values(), 30, interval=0.2)
        log(f"kill {node} ({len(before)} replicas: {', '.join(before)}) under load")
        started = time.monotonic()
        next(n for n in cluster.workers() if n.name == node).kill()
        wait_until(lambda: node_row(cluster, node)["status"] == "Down", MOVE_TIMEOUT, interval=0.2)
        down_s = time.monotonic() - started
        done = wait_until(lambda: runs_without(node, host), MOVE_TIMEOUT, interval=0.2)
        took = time.monotonic() - started
        load.wait_for(load.sent + REQUESTS_AFTER)
    tasks_lost, tasks_s = lost(base, task_ids, started)
    return ({"step": f"kill {node}", "sent": load.sent, "failed": load.failed, "tasks": TASKS, "lost": tasks_lost,
             "recovered_s": took if done else None, "detail": f"Down after {down_s:.1f}s, its replicas running "
             f"elsewhere after {took:.1f}s; every task done {tasks_s:.0f}s after the kill; "
             f"statuses {dict(load.statuses)}"}, node)


def back(cluster: Cluster, node: str) -> dict:
    index, node_id = int(node.rsplit("-", 1)[-1]), node_row(cluster, node)["id"]
    started = time.monotonic()
    log(cluster.boot(index, cluster.subnet()))
    cluster.wait_ready(120)
    took = time.monotonic() - started
    rejoined = node_row(cluster, node)["id"] == node_id
    return {"step": f"{node} back", "sent": 0, "failed": 0, "tasks": 0, "lost": 0,
            "recovered_s": took if rejoined else None,
            "detail": f"booted from its volume, Ready in {took:.1f}s, "
            + ("the same node ID: it rejoined by itself" if rejoined else f"a new node ID (was {node_id})")}


def table(rows: list[dict]) -> str:
    lines = [f"{'step':<26} {'sent':>6} {'failed':>6} {'tasks':>5} {'lost':>4} {'recovered':>9}"]
    for row in rows:
        recovered = f"{row['recovered_s']:.1f}s" if row["recovered_s"] is not None else "NO"
        lines.append(f"{row['step']:<26} {row['sent']:>6} {row['failed']:>6} {row['tasks']:>5} {row['lost']:>4} "
                     f"{recovered:>9}")
    lines += [f"  {row['step']}: {row['detail']}" for row in rows]
    return "\n".join(lines)


def main() -> int:
    try:
        cluster = current()
        host = cluster.docker_host()
        if not converged(STACK, host):
            raise ClusterError(f"the stack {STACK} is not running on every replica: `make up-cluster` first")
        base = f"http://127.0.0.1:{cluster.published(8000)}"
        rows = [drain(cluster, base, host)]
        killed, node = kill(cluster, base, host)
        rows += [killed, back(cluster, node)]
    except (ClusterError, NodeError) as error:
        print(f"[cluster] {error}", file=sys.stderr)
        return 1
    print(table(rows))
    ok = all(row["recovered_s"] is not None and row["lost"] == 0 for row in rows) and rows[0]["failed"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
