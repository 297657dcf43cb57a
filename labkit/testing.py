"""Helpers for graded tests: build an image, start a container, wait for it, and turn every way a
submission can break (build error, container that exits, port that never answers) into feedback a
student can act on: what was expected, what happened, the last log lines.
"""
from __future__ import annotations

import time
from pathlib import Path

import docker
import requests
from docker.errors import APIError, BuildError, DockerException
from testcontainers.core.container import DockerContainer
from testcontainers.core.wait_strategies import HttpWaitStrategy
from testcontainers.core.waiting_utils import WaitStrategy

from labkit.resources import RUN_LABEL

BUILD_TIMEOUT = 900  # a cold build installs the Python dependencies from PyPI
START_TIMEOUT = 30


class Feedback(AssertionError):
    """A failed requirement, phrased for the student."""


def log_tail(container, lines: int = 15) -> str:
    try:
        text = container.logs(tail=lines).decode(errors="replace").rstrip()
    except (DockerException, AttributeError):
        return ""
    return f"\n  last container log lines:\n    " + "\n    ".join(text.splitlines()) if text else "\n  (the container logged nothing)"


def feedback(expected: str, got: str, container=None) -> str:
    """The feedback message: what was expected, what happened, and the container's last log lines."""
    return f"expected {expected}; got {got}{log_tail(container) if container is not None else ''}"


def build_image(client: docker.DockerClient, context: Path, tag: str, run_id: str,
                buildargs: dict | None = None) -> tuple[str, list[str]]:
    """Build `context` with the classic builder; returns (image id, build output lines)."""
    if not (context / "Dockerfile").is_file():
        raise Feedback(f"expected a Dockerfile in {context.name}/; there is none")
    lines: list[str] = []
    image_id = None
    try:
        for chunk in client.api.build(path=str(context), tag=tag, rm=True, forcerm=True, decode=True,
                                      labels={RUN_LABEL: run_id}, buildargs=buildargs,
                                      timeout=BUILD_TIMEOUT):
            if "stream" in chunk:
                lines.extend(l for l in chunk["stream"].splitlines() if l.strip())
            if "aux" in chunk:
                image_id = chunk["aux"].get("ID", image_id)
            if "error" in chunk:
                tail = "\n    ".join(lines[-8:])
                raise Feedback(f"expected the image to build; the build failed: {chunk['error'].strip()}"
                               f"\n  last build output:\n    {tail}")
    except APIError as error:  # e.g. a Dockerfile the parser rejects
        raise Feedback(f"expected the image to build; docker refused it: {error.explanation}") from None
    except BuildError as error:
        raise Feedback(f"expected the image to build; the build failed: {error.msg}") from None
    if image_id is None:
        image_id = client.images.get(tag).id
    return image_id, lines


def step_used_cache(build_lines: list[str], needle: str) -> bool | None:
    """Whether the build step whose instruction contains `needle` came from the cache (None: no such step)."""
    for index, line in enumerate(build_lines):
        if line.startswith("Step ") and needle in line:
            following = build_lines[index + 1] if index + 1 < len(build_lines) else ""
            return "Using cache" in following
    return None


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
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise Feedback(feedback(f"an HTTP answer on port {self.port} within {self.timeout:.0f}s",
                                   "no answer (is the server listening on 0.0.0.0:8000, not 127.0.0.1?)",
                                   wrapped)) from None


class LabContainer(DockerContainer):
    """A container for a graded test: labelled with the run, ports published on 127.0.0.1 only."""

    def __init__(self, image: str, run_id: str, name: str, **kwargs) -> None:
        super().__init__(image, **kwargs)
        self.with_name(name)
        self.with_kwargs(labels={RUN_LABEL: run_id})

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


def post_json(url: str, payload, timeout: float = 10) -> requests.Response:
    try:
        return requests.post(url, json=payload, timeout=timeout)
    except requests.RequestException as error:
        raise Feedback(f"expected an HTTP answer from {url}; the request failed: {error}") from None
