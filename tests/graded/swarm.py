"""Swarms and stacks for the swarm lab's graded tests, driven through the docker CLI the way a student
drives it (`docker stack deploy`), with every wait bounded: on this machine's engine (a single-node
swarm), or on a cluster of engines in containers (`labkit.cluster`), reached through its manager."""
from __future__ import annotations

import functools
import json
import os
import secrets
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import docker as docker_sdk
import requests
from docker.errors import DockerException

from labkit import policy
from labkit.cluster import Cluster
from labkit.testing import Feedback, wait_until

CLI_TIMEOUT = 120
LOG_LINES = 20000  # at most this many log lines read per api container


@functools.cache
def docker_client():
    return docker_sdk.from_env(timeout=60)


def docker(*args: str, env: dict | None = None, cwd: Path | None = None, check: bool = True) -> str:
    """The docker CLI; `env` replaces the grader's environment (a student's file sees only it)."""
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=CLI_TIMEOUT,
                            env=env or os.environ, cwd=cwd)
    if check and result.returncode != 0:
        raise Feedback(f"expected `docker {' '.join(args)}` to succeed; it failed: "
                       f"{(result.stderr or result.stdout).strip()[-600:]}")
    return result.stdout


def stack_env(home: Path, api_image: str, gateway_port: int) -> dict:
    """All a stack file's interpolation sees: the grader's two variables (and PATH, an empty HOME)."""
    return policy.minimal_env(home, API_IMAGE=api_image, GATEWAY_PORT=str(gateway_port))


@dataclass
class Stack:
    """One deployed stack: `name`, its folder, the grader's override file (limits, bounded logs)
    and the environment it is deployed with."""
    name: str
    folder: Path
    gateway_port: int
    api_image: str
    home: Path
    override: Path
    replicas: int = 1  # the api replicas the student's file asks for
    cluster: Cluster | None = None  # deployed through this cluster's manager; None: this machine's engine
    entry: str = ""  # on a cluster: the node whose gateway port requests go to ("": the manager)

    @functools.cached_property
    def engine(self) -> dict:
        """Where the docker CLI finds the engine the stack runs on: a cluster's manager, or as the grader's."""
        return {"DOCKER_HOST": self.cluster.docker_host()} if self.cluster else {}

    @property
    def env(self) -> dict:
        return {**stack_env(self.home, self.api_image, self.gateway_port), **self.engine}

    def cli(self, *args: str, check: bool = False) -> str:
        """The grader's own docker CLI call, to the engine the stack runs on; its output (check: Feedback
        when it fails)."""
        return docker(*args, env={**os.environ, **self.engine} if self.engine else None, check=check)

    def deploy(self, api_image: str | None = None) -> None:
        self.api_image = api_image or self.api_image
        # An update right after another can be refused ("update out of sequence"): retry, bounded.
        for attempt in range(3):
            result = subprocess.run(
                ["docker", "stack", "deploy", "--resolve-image", "never", "--prune", "-c", "stack.yaml",
                 "-c", str(self.override), self.name],
                capture_output=True, text=True, timeout=CLI_TIMEOUT, env=self.env, cwd=self.folder)
            if result.returncode == 0:
                return
            if "out of sequence" not in result.stderr or attempt == 2:
                raise Feedback(f"expected `docker stack deploy -c stack.yaml` to succeed; it failed: "
                               f"{result.stderr.strip()[-600:]}")

    def remove(self) -> None:
        self.cli("stack", "rm", self.name)
        # Stack removal is asynchronous; wait until its containers and network are really gone.
        wait_until(lambda: not self.cli("ps", "-aq", "--filter", f"label=com.docker.stack.namespace={self.name}").strip()
                   and not self.cli("network", "ls", "-q", "--filter",
                                    f"label=com.docker.stack.namespace={self.name}").strip(), timeout=60)

    def service(self, short: str = "api") -> dict:
        out = self.cli("service", "inspect", f"{self.name}_{short}")
        return (json.loads(out) or [{}])[0] if out.strip() else {}

    def running_tasks(self, short: str = "api") -> list[tuple[str, str]]:
        """(image, node) of each running task of the service."""
        out = self.cli("service", "ps", f"{self.name}_{short}", "--filter", "desired-state=running",
                       "--format", "{{.Image}} {{.Node}} {{.CurrentState}}")
        return [tuple(line.split()[:2]) for line in out.splitlines() if " Running " in f" {line} "]

    def running_images(self, short: str = "api") -> list[str]:
        return [image for image, _ in self.running_tasks(short)]

    def update_state(self) -> str:
        return ((self.service().get("UpdateStatus") or {}).get("State")) or ""

    def url(self, path: str = "/predict") -> str:
        # On a cluster a node's gateway port is published on this machine's loopback.
        port = self.cluster.published(self.gateway_port, self.cluster.node_names().index(self.entry) + 1
                                      if self.entry else 1) if self.cluster else self.gateway_port
        return f"http://127.0.0.1:{port}{path}"

    def served(self, since: float) -> dict[str, int]:
        """POST /predict answers each api task container logged since `since` (its access log):
        who really served, whatever the answers' headers say. Containers of finished tasks count."""
        if self.cluster:
            return self.served_on_nodes(since)
        counts = {}
        for box in docker_client().containers.list(all=True, filters={
                "label": f"com.docker.swarm.service.name={self.name}_api"}):
            try:
                log = box.logs(since=int(since), tail=LOG_LINES).decode(errors="replace")
            except DockerException:
                continue
            counts[box.id[:12]] = log.count("POST /predict")
        return counts

    def served_on_nodes(self, since: float) -> dict[str, int]:
        """`served`, asked of each node's engine of the cluster (a task's container is on its node)."""
        counts, label = {}, f"label=com.docker.swarm.service.name={self.name}_api"
        for node in (self.cluster.manager, *self.cluster.workers()):
            listed = node.docker("ps", "-aq", "--filter", label, timeout=30)
            for box in (listed.stdout.split() if listed is not None and listed.returncode == 0 else []):
                log = node.docker("logs", "--since", str(int(since)), "--tail", str(LOG_LINES), box, timeout=30)
                if log is not None and log.returncode == 0:
                    counts[f"{node.name}/{box}"] = (log.stdout + log.stderr).count("POST /predict")
        return counts

    def nodes_matching(self, constraints: list[str], timeout: float = 15) -> list[str]:
        """The nodes a task with these placement constraints may run on, as swarm itself decides: a probe
        service in global mode gets one task on every node that fits (and none if no node does)."""
        probe = f"placement-probe-{secrets.token_hex(4)}"  # a service name has at most 63 characters
        self.cli("service", "create", "--detach", "--name", probe, "--mode", "global", "--no-healthcheck",
                 "--restart-condition", "none", *[arg for c in constraints for arg in ("--constraint", c)],
                 self.api_image, "sleep", "300", check=True)
        try:
            seen: list[list[str]] = []

            def settled() -> bool:  # the global orchestrator makes every node's task at once; read until stable
                seen.append(sorted(self.cli("service", "ps", probe, "--format", "{{.Node}}").split()))
                return len(seen) >= 2 and seen[-1] == seen[-2] and bool(seen[-1])
            wait_until(settled, timeout)
            return seen[-1] if seen else []
        finally:
            self.cli("service", "rm", probe)

    def healthy_replicas(self) -> int:
        """Running api task containers whose health check says healthy."""
        boxes = docker_client().containers.list(filters={"label": f"com.docker.swarm.service.name={self.name}_api"})
        return sum((box.attrs["State"].get("Health") or {}).get("Status") == "healthy" for box in boxes)

    def task_errors(self) -> str:
        out = self.cli("service", "ps", f"{self.name}_api", "--no-trunc", "--format",
                       "{{.Name}} {{.Image}} {{.Node}} {{.CurrentState}} {{.Error}}")
        return "\n    ".join(out.splitlines()[:8])


PREDICT = {"data": [[5.1, 3.5, 1.4, 0.2], [2.4, 0.1, 5.3, 4.2]]}


@dataclass
class Load:
    """Requests through the gateway from a background thread, bounded in count and time."""
    url: str
    max_requests: int = 5000
    max_seconds: float = 180
    sent: int = 0
    ok: int = 0
    errors: list = field(default_factory=list)
    failed_at: list = field(default_factory=list)  # time.monotonic() at which each failed request was sent

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        with requests.Session() as session:
            while not self._stop.is_set() and self.sent < self.max_requests and time.monotonic() < deadline:
                self.sent += 1
                sent_at = time.monotonic()
                try:
                    response = session.post(self.url, json=PREDICT, timeout=5)
                    ok = response.status_code == 200 and response.json().get("result") == [0, 2]
                except (requests.RequestException, ValueError) as error:
                    ok, response = False, error
                self.ok += ok
                if not ok:
                    self.failed_at.append(sent_at)
                    self.errors.append(str(getattr(response, "status_code", response))[:120])
                time.sleep(0.02)  # pacing, not readiness: ~50 requests/s keeps the machine responsive

    def __enter__(self) -> "Load":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    @property
    def failed(self) -> int:
        return len(self.failed_at)

    def failed_after(self, moment: float) -> int:
        """Failed requests sent after `moment` (time.monotonic())."""
        return sum(sent_at > moment for sent_at in self.failed_at)

    def summary(self) -> str:
        return f"{self.sent} requests sent, {self.failed} failed" + (
            f" (first errors: {self.errors[:3]})" if self.errors else "")
