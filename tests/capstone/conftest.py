"""Fixtures for the capstone's fault tests: the root docker-compose.yaml, started for real."""
from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from labkit.engine import builder_env
from labkit.resources import free_port, unique_name
from labkit.testing import wait_until

ROOT = Path(__file__).resolve().parents[2]
# `make chaos` sets CHAOS=full: bigger loads; `make test` runs the same tests with small ones.
FULL = os.environ.get("CHAOS") == "full"
WORKER_PROCESSES = 2  # the worker's --concurrency in docker-compose.yaml


@dataclass
class Capstone:
    """The running service: its compose project and the gateway's URL."""
    project: str
    env: dict

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.env['GATEWAY_PORT']}"

    def compose(self, *args: str, timeout: float = 300) -> str:
        result = subprocess.run(["docker", "compose", "-p", self.project, *args], cwd=ROOT, env=self.env,
                                capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise AssertionError(f"docker compose {' '.join(args)} failed:\n{result.stderr[-2000:]}")
        return result.stdout

    def containers(self, service: str) -> list[str]:
        return self.compose("ps", "-q", service).split()

    def restart_worker(self, container: str, timeout: float = 120) -> bool:
        """Start a stopped worker container; True once Celery logs that it is ready to consume."""
        since = subprocess.run(["docker", "inspect", "-f", "{{.State.FinishedAt}}", container],
                               capture_output=True, text=True, timeout=30).stdout.strip()
        self.compose("start", "worker")

        def ready() -> bool:
            logs = subprocess.run(["docker", "logs", "--since", since, container], capture_output=True,
                                  text=True, timeout=30)
            return " ready." in logs.stdout + logs.stderr

        return bool(wait_until(ready, timeout, interval=0.5))

    def queue_depth(self, queue: str = "celery") -> tuple[int, int]:
        """(ready, unacknowledged) messages of a RabbitMQ queue, as the broker counts them."""
        result = subprocess.run(["docker", "exec", self.containers("queue")[0], "rabbitmqctl", "list_queues", "-q",
                                 "name", "messages_ready", "messages_unacknowledged"],
                                capture_output=True, text=True, timeout=60)
        for line in result.stdout.splitlines():
            name, *numbers = line.split()
            if name == queue and len(numbers) == 2:
                return int(numbers[0]), int(numbers[1])
        raise AssertionError(f"RabbitMQ lists no queue {queue!r}: {result.stdout[-500:]}{result.stderr[-500:]}")


@pytest.fixture(scope="session")
def capstone(run_id, docker_client):
    """The whole service under a project of this run, on free loopback ports; removed with its volumes."""
    env = {**os.environ, "GATEWAY_PORT": str(free_port()), "FLOWER_PORT": str(free_port()),
           **builder_env()}
    service = Capstone(unique_name(run_id, "capstone"), env)
    try:
        service.compose("up", "--detach", "--build", "--wait", "--wait-timeout", "240", timeout=900)
        yield service
    finally:
        service.compose("down", "--volumes", "--remove-orphans", "--timeout", "5")


@pytest.fixture
def report():
    """Prints what a fault test sent, what failed and what was lost (run with -s to see it live)."""
    def write(title: str, **numbers) -> None:
        line = f"[chaos] {title}: " + ", ".join(f"{k}={v}" for k, v in numbers.items())
        print(line)
        (ROOT / "build").mkdir(exist_ok=True)
        with open(ROOT / "build" / "chaos.log", "a") as log:
            log.write(line + "\n")
    return write
