"""A single-node swarm and stacks for the swarm lab's graded tests, driven through the docker CLI the
way a student drives it (`docker stack deploy`), with every wait bounded."""
from __future__ import annotations

import functools
import json
import os
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import docker as docker_sdk
import requests
from docker.errors import DockerException

from labkit import policy
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

    @property
    def env(self) -> dict:
        return stack_env(self.home, self.api_image, self.gateway_port)

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
        docker("stack", "rm", self.name, check=False)
        # Stack removal is asynchronous; wait until its containers and network are really gone.
        wait_until(lambda: not docker("ps", "-aq", "--filter", f"label=com.docker.stack.namespace={self.name}",
                                      check=False).strip()
                   and not docker("network", "ls", "-q", "--filter", f"label=com.docker.stack.namespace={self.name}",
                                  check=False).strip(), timeout=60)

    def service(self, short: str = "api") -> dict:
        out = docker("service", "inspect", f"{self.name}_{short}", check=False)
        return (json.loads(out) or [{}])[0] if out.strip() else {}

    def running_images(self, short: str = "api") -> list[str]:
        out = docker("service", "ps", f"{self.name}_{short}", "--filter", "desired-state=running",
                     "--format", "{{.Image}} {{.CurrentState}}", check=False)
        return [line.split()[0] for line in out.splitlines() if " Running " in f" {line} "]

    def update_state(self) -> str:
        return ((self.service().get("UpdateStatus") or {}).get("State")) or ""

    def url(self, path: str = "/predict") -> str:
        return f"http://127.0.0.1:{self.gateway_port}{path}"

    def served(self, since: float) -> dict[str, int]:
        """POST /predict answers each api task container logged since `since` (its access log):
        who really served, whatever the answers' headers say. Containers of finished tasks count."""
        counts = {}
        for box in docker_client().containers.list(all=True, filters={
                "label": f"com.docker.swarm.service.name={self.name}_api"}):
            try:
                log = box.logs(since=int(since), tail=LOG_LINES).decode(errors="replace")
            except DockerException:
                continue
            counts[box.id[:12]] = log.count("POST /predict")
        return counts

    def healthy_replicas(self) -> int:
        """Running api task containers whose health check says healthy."""
        boxes = docker_client().containers.list(filters={"label": f"com.docker.swarm.service.name={self.name}_api"})
        return sum((box.attrs["State"].get("Health") or {}).get("Status") == "healthy" for box in boxes)

    def task_errors(self) -> str:
        out = docker("service", "ps", f"{self.name}_api", "--no-trunc", "--format",
                     "{{.Name}} {{.Image}} {{.CurrentState}} {{.Error}}", check=False)
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
