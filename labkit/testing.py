"""Helpers for graded tests: build an image, start a container, wait for it, and turn every way a
submission can break (build error, container that exits, port that never answers) into feedback a
student can act on: what was expected, what happened, the last log lines.

Everything built or started from a submission is untrusted: builds and containers get the LIMITS
below, and whatever the grader reads back (logs, HTTP bodies, build output) is read with a size cap.
"""
from __future__ import annotations

import collections
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import docker
import requests
from docker.errors import APIError, BuildError, DockerException
from docker.types import LogConfig
from testcontainers.core.container import DockerContainer
from testcontainers.core.wait_strategies import HttpWaitStrategy
from testcontainers.core.waiting_utils import WaitStrategy

from labkit.resources import RUN_LABEL

MiB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """The one place that bounds what a submission may use (numbers are stated to students too)."""

    # A cold build installs the week's dependencies from PyPI (minutes on a slow link); a build still
    # running after this is stopped, and the feedback names the Dockerfile step it was in.
    build_seconds: float = float(os.environ.get("LABKIT_BUILD_DEADLINE", "600"))
    build_memory: int = 2048 * MiB     # scikit-learn's wheels and the model training fit easily
    build_cpu_shares: int = 512        # half the weight of other work on a shared machine
    memory: str = "1g"                 # a gunicorn master + 2 workers with the model: ~350 MiB
    pids: int = 256                    # processes + threads: plenty for a server, a fork bomb stops here
    nano_cpus: int = 1_000_000_000     # one CPU
    log_bytes: str = "1m"              # docker logs keeps at most this much (json-file max-size)
    read_bytes: int = 1 * MiB          # the most the grader reads of one HTTP body or log
    build_output_lines: int = 400      # build output kept for feedback (lines of at most 300 chars)

    def container_kwargs(self) -> dict:
        """docker run options for every container the grader starts."""
        return {"mem_limit": self.memory, "memswap_limit": self.memory, "pids_limit": self.pids,
                "nano_cpus": self.nano_cpus,
                "log_config": LogConfig(type="json-file", config={"max-size": self.log_bytes, "max-file": "1"})}

    def build_kwargs(self) -> dict:
        """container_limits for the classic builder's RUN steps."""
        return {"memory": self.build_memory, "memswap": self.build_memory, "cpushares": self.build_cpu_shares}


LIMITS = Limits()
# A bound, not a requirement: a loaded 2-core machine starts gunicorn slowly. LABKIT_START_TIMEOUT sets
# another (the grader's own tests wait less for a server that never answers).
START_TIMEOUT = float(os.environ.get("LABKIT_START_TIMEOUT", "60"))


class Feedback(AssertionError):
    """A failed requirement, phrased for the student."""


def log_tail(container, lines: int = 15, max_chars: int = 3000) -> str:
    try:
        text = container.logs(tail=lines)[-max_chars:].decode(errors="replace").rstrip()
    except (DockerException, AttributeError):
        return ""
    return f"\n  last container log lines:\n    " + "\n    ".join(text.splitlines()) if text else "\n  (the container logged nothing)"


def feedback(expected: str, got: str, container=None) -> str:
    """The feedback message: what was expected, what happened, and the container's last log lines."""
    return f"expected {expected}; got {got}{log_tail(container) if container is not None else ''}"


def build_image(client: docker.DockerClient, context: Path, tag: str, run_id: str,
                buildargs: dict | None = None, deadline: float | None = None) -> tuple[str, list[str]]:
    """Build `context` with the classic builder, within LIMITS; returns (image id, build output lines).

    A build still running after `deadline` seconds is stopped (its RUN container is killed) and
    reported with the step it was in."""
    if not (context / "Dockerfile").is_file():
        raise Feedback(f"expected a Dockerfile in {context.name}/; there is none")
    deadline = LIMITS.build_seconds if deadline is None else deadline
    lines: collections.deque[str] = collections.deque(maxlen=LIMITS.build_output_lines)
    progress = BuildProgress()
    watchdog = threading.Timer(deadline, progress.stop, args=(client,))
    watchdog.daemon = True
    image_id = None
    watchdog.start()
    try:
        for chunk in client.api.build(path=str(context), tag=tag, rm=True, forcerm=True, decode=True,
                                      labels={RUN_LABEL: run_id}, buildargs=buildargs,
                                      container_limits=LIMITS.build_kwargs(), timeout=deadline + 60):
            if "stream" in chunk:
                for line in chunk["stream"].splitlines():
                    if line.strip():
                        lines.append(line[:300])
                        progress.saw(line)
            if "aux" in chunk:
                image_id = chunk["aux"].get("ID", image_id)
            if "error" in chunk:
                progress.raise_if_stopped(deadline)
                tail = "\n    ".join(list(lines)[-8:])
                raise Feedback(f"expected the image to build; the build failed: {chunk['error'].strip()[:500]}"
                               f"\n  last build output:\n    {tail}")
    except APIError as error:  # e.g. a Dockerfile the parser rejects
        raise Feedback(f"expected the image to build; docker refused it: {str(error.explanation)[:500]}") from None
    except BuildError as error:
        raise Feedback(f"expected the image to build; the build failed: {error.msg}") from None
    except requests.RequestException:
        progress.raise_if_stopped(deadline)
        raise
    finally:
        watchdog.cancel()
    progress.raise_if_stopped(deadline)
    if image_id is None:
        image_id = client.images.get(tag).id
    return image_id, list(lines)


class BuildProgress:
    """Which Dockerfile step a classic build is in, and the container running it (to stop it)."""

    def __init__(self) -> None:
        self.step, self.container, self.stopped = "", "", False

    def saw(self, line: str) -> None:
        if line.startswith("Step "):
            self.step, self.container = line.strip(), ""
        found = re.match(r"\s*---> Running in ([0-9a-f]{12,64})", line)
        if found:
            self.container = found.group(1)

    def stop(self, client: docker.DockerClient) -> None:
        """The deadline passed: kill the step's container, which ends the build with an error."""
        self.stopped = True
        if self.container:
            try:
                client.api.kill(self.container)
            except DockerException:
                pass  # it ended on its own meanwhile

    def raise_if_stopped(self, deadline: float) -> None:
        if self.stopped:
            raise Feedback(f"expected the image to build within {deadline:.0f} s; the build was stopped "
                           f"after {deadline:.0f} s in {self.step or 'its first step'}")


class ServingWait(WaitStrategy):
    """An HTTP answer on `port` within the startup timeout (testcontainers' HttpWaitStrategy, one short
    attempt at a time); gives up at once, with the logs, when the container has exited. Only public
    testcontainers API: a WaitStrategy subclass implements wait_until_ready."""

    def __init__(self, port: int, path: str = "/") -> None:
        super().__init__()
        self.port, self.path, self.timeout, self.interval = port, path, float(START_TIMEOUT), 0.5
        self.accepts = lambda code: code == 200

    def for_status_code_matching(self, predicate) -> "ServingWait":
        self.accepts = predicate
        return self

    def with_startup_timeout(self, timeout) -> "ServingWait":
        self.timeout = float(timeout)
        return super().with_startup_timeout(timeout)

    def with_poll_interval(self, interval) -> "ServingWait":
        self.interval = float(interval)
        return super().with_poll_interval(interval)

    def wait_until_ready(self, container) -> None:
        attempt = (HttpWaitStrategy(self.port, self.path).for_status_code_matching(self.accepts)
                   .with_startup_timeout(1).with_poll_interval(min(self.interval, 0.5)))
        wrapped = container.get_wrapped_container()
        deadline = time.monotonic() + self.timeout
        while True:
            wrapped.reload()
            if wrapped.status in ("exited", "dead"):
                code = wrapped.attrs["State"]["ExitCode"]
                raise Feedback(feedback(f"the container to keep running and serve on port {self.port}",
                               f"it exited at once with code {code}", wrapped))
            try:
                attempt.wait_until_ready(container)
                return
            except (TimeoutError, ConnectionError) as error:
                if isinstance(error, ConnectionError):
                    # "Port mapping ... not available": the container exited since the reload above (the
                    # next round reports its exit code), or its ports are not published yet.
                    time.sleep(min(self.interval, 0.5))
                if time.monotonic() > deadline:
                    raise Feedback(feedback(f"an HTTP answer on port {self.port} within {self.timeout:.0f}s",
                                   "no answer (is the server listening on 0.0.0.0:8000, not 127.0.0.1?)",
                                   wrapped)) from None


class LabContainer(DockerContainer):
    """A container for a graded test: labelled with the run, ports published on 127.0.0.1 only."""

    def __init__(self, image: str, run_id: str, name: str, **kwargs) -> None:
        self.options: dict = {}  # docker run options given so far (testcontainers' with_kwargs replaces them)
        self.on_a_network = False
        super().__init__(image, **kwargs)
        self.with_name(name)
        self.with_kwargs(labels={RUN_LABEL: run_id})
        # One CPU (LIMITS): a BLAS thread per host core only fights over it (training the lab 01 model at
        # start took 6.8 s with them, 0.9 s without on 2 busy cores).
        for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            self.with_env(variable, "1")

    def with_kwargs(self, **kwargs) -> "LabContainer":
        """More docker run options; LIMITS always apply (a caller may only make them stricter by name)."""
        self.options.update(kwargs)
        return super().with_kwargs(**{**LIMITS.container_kwargs(), **self.options})

    def with_network(self, network) -> "LabContainer":
        self.on_a_network = True
        return super().with_network(network)

    def start(self) -> "LabContainer":
        if not self.on_a_network and "network" not in self.options:
            # The engine's default network, named: without one, testcontainers looks for "its own" network
            # among every custom network on the engine and fails on one with no IPAM config yet (a swarm
            # overlay being created by another test: "'NoneType' object is not iterable").
            self.with_kwargs(network="bridge")
        return super().start()

    def publish(self, port: int) -> "LabContainer":
        self.ports[f"{port}/tcp"] = ("127.0.0.1", None)
        return self

    def get_container_host_ip(self) -> str:
        return "127.0.0.1"  # the only address its ports are published on

    def url(self, port: int = 8000, path: str = "") -> str:
        return f"http://127.0.0.1:{self.get_exposed_port(port)}{path}"

    def remove(self) -> None:
        try:
            self.stop()
        except DockerException:
            pass


def start_serving(image: str, run_id: str, name: str, port: int = 8000, path: str = "/health",
                  timeout: float = START_TIMEOUT, **env: str) -> LabContainer:
    """Start a container and wait until `path` answers with any status below 500."""
    container = LabContainer(image, run_id, name).publish(port)
    for key, value in env.items():
        container.with_env(key, value)
    wait = ServingWait(port, path).for_status_code_matching(lambda code: code < 500)
    container.waiting_for(wait.with_startup_timeout(timeout).with_poll_interval(0.5))
    try:
        container.start()
    except Exception:
        container.remove()
        raise
    return container


def wait_until(predicate, timeout: float, interval: float = 0.5):
    """Poll `predicate` until it returns a truthy value or `timeout` passes; returns the last value."""
    deadline = time.monotonic() + timeout
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = predicate()
    return value


def capped(response: requests.Response, limit: int = LIMITS.read_bytes) -> requests.Response:
    """Read a streamed response's body, at most `limit` bytes (a submission may answer forever)."""
    body = response.raw.read(limit + 1, decode_content=True)
    response.close()
    if len(body) > limit:
        raise Feedback(f"expected an answer of at most {limit // 1024} KiB; got a longer one")
    response._content, response._content_consumed = body, True  # what .text and .json() read
    return response


def request(method: str, url: str, timeout: float = 10, **kwargs) -> requests.Response:
    """One HTTP request to a submission's container, its body read with a cap; feedback on failure."""
    try:
        return capped(requests.request(method, url, timeout=timeout, stream=True, **kwargs))
    except requests.RequestException as error:
        raise Feedback(f"expected an HTTP answer from {url}; the request failed: {error}") from None


def post_json(url: str, payload, timeout: float = 10) -> requests.Response:
    return request("POST", url, timeout=timeout, json=payload)


def kill_main_process(client: docker.DockerClient, container, run_id: str) -> None:
    """SIGKILL a container's main process as a crash would (not `docker kill`, which Docker never
    restarts). Done from the course's own debian image in the host's PID namespace: a student's
    image never runs with host namespaces."""
    container.reload()
    client.containers.run("debian:bookworm-slim", ["kill", "-9", str(container.attrs["State"]["Pid"])],
                          pid_mode="host", remove=True, labels={RUN_LABEL: run_id}, **LIMITS.container_kwargs())
