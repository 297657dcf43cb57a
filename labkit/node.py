"""A Docker engine in a container (Docker-in-Docker): a node for `labkit compat` and a multi-node swarm.

    with Node("compat-trixie", "trixie", daemon_json={...}) as node:   # started, answering
        node.load_images(["python:3.11-slim"])                         # docker save | docker load
        node.docker("info")                                            # the CLI inside the node

On a student's machine a node runs with `--privileged`. This sandbox refuses it (its capability set
lacks CAP_SYS_RESOURCE: "unable to apply caps"), so the node falls back to every other capability, no
seccomp/AppArmor profile and all devices; its entrypoint mounts the cgroups dockerd needs (DESIGN §3).
Images come from the host engine, since there may be no registry.
"""
from __future__ import annotations

import json
import subprocess
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field

from labkit.engine import docker
from labkit.images import BaseImage, ensure

NODE_LABEL = "org.labkit.node"
# Debian's docker.io as an engine image: bookworm's Engine 20.10, trixie's Engine 26 (with buildx).
NODE_IMAGES = {
    "bookworm": BaseImage("labkit/dind:bookworm", "dind.Dockerfile", ("dind-entrypoint.sh",),
                          buildargs=(("SUITE", "bookworm"),)),
    "trixie": BaseImage("labkit/dind:trixie", "dind.Dockerfile", ("dind-entrypoint.sh",), suite="trixie",
                        buildargs=(("SUITE", "trixie"), ("EXTRA_PACKAGES", "docker-cli docker-buildx docker-compose"))),
}
ROOTS = {"bookworm": BaseImage("debian:bookworm-slim", None),
         "trixie": BaseImage("debian:trixie-slim", None, suite="trixie")}
WITHOUT_PRIVILEGED = ["--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE", "--security-opt", "seccomp=unconfined",
                      "--security-opt", "apparmor=unconfined", "--device-cgroup-rule", "a *:* rwm"]
START_TIMEOUT = 90
LOAD_TIMEOUT = 600


class NodeError(RuntimeError):
    """A node that did not start, answer or take an image; the message says why."""


def node_image(suite: str) -> str:
    """The engine image of a Debian release, built on first use (its rootfs by debootstrap, then docker.io)."""
    for image in (ROOTS[suite], NODE_IMAGES[suite]):
        ensure(image, allow_pull=False)
    return NODE_IMAGES[suite].tag


@dataclass
class Node:
    name: str
    suite: str = "trixie"
    daemon_json: dict | None = None  # /etc/docker/daemon.json of the node's engine
    network: str | None = None  # a Docker network to join (swarm nodes reach each other on it)
    run_args: list[str] = field(default_factory=list)  # more `docker run` options, e.g. -p
    privileged: bool | None = None  # None: try --privileged, fall back to the recipe above
    command: list[str] = field(default_factory=list)  # replaces the image's dockerd command line when given
    labels: dict[str, str] = field(default_factory=dict)  # on the container and its volume (e.g. a test run's)

    @property
    def volume(self) -> str:
        return f"{self.name}-var-lib-docker"

    def __enter__(self) -> "Node":
        try:
            self.start()
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    def start(self, timeout: float = START_TIMEOUT) -> None:
        image = node_image(self.suite)
        modes = [self.privileged] if self.privileged is not None else [True, False]
        errors = []
        for privileged in modes:
            error = self._run(image, privileged)
            if not error:
                self.privileged = privileged
                break
            errors.append(f"{'with' if privileged else 'without'} --privileged: {error}")
        else:
            raise NodeError(f"node {self.name}: docker run failed " + "; ".join(errors))
        self.wait(timeout)

    def _run(self, image: str, privileged: bool) -> str:
        """Start the container; the error, or "" when it started."""
        docker("rm", "-f", self.name)
        labels = [arg for key, value in self.labels.items() for arg in ("--label", f"{key}={value}")]
        docker("volume", "create", *labels, self.volume)  # made here, not by `run -v`: so that it has the labels
        args = ["run", "-d", "--name", self.name, "--hostname", self.name, "--label", f"{NODE_LABEL}={self.name}",
                *labels, "-v", f"{self.volume}:/var/lib/docker", *self.run_args]
        args += ["--privileged"] if privileged else WITHOUT_PRIVILEGED
        if self.network:
            args += ["--network", self.network]
        if self.daemon_json is not None:
            args += ["-e", f"LABKIT_DAEMON_JSON={json.dumps(self.daemon_json)}"]
        result = docker(*args, image, *self.command, timeout=60)
        if result is None:
            return "no answer within 60s"
        return result.stderr.strip()[-300:] if result.returncode != 0 else ""

    def wait(self, timeout: float) -> None:
        """Poll until the node's engine answers; fail early, with its log, when the node exited."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.answers():
                return
            if not self.running():
                break
            time.sleep(1)
        raise NodeError(f"node {self.name}: the engine did not answer within {timeout:.0f}s; its log:\n"
                        + self.log_tail())

    def log_tail(self, lines: int = 15) -> str:
        result = docker("logs", "--tail", str(lines), self.name)
        return (result.stdout + result.stderr).strip() if result is not None else ""

    def docker(self, *args: str, timeout: float = 120, env: dict[str, str] | None = None
               ) -> subprocess.CompletedProcess | None:
        """The docker CLI inside the node, talking to the node's engine."""
        env_args = [arg for key, value in (env or {}).items() for arg in ("-e", f"{key}={value}")]
        return docker("exec", *env_args, self.name, "docker", *args, timeout=timeout)

    def server_version(self) -> str:
        result = self.docker("version", "--format", "{{.Server.Version}} (API {{.Server.APIVersion}})")
        return result.stdout.strip() if result is not None and result.returncode == 0 else "?"

    def load_images(self, tags: list[str], timeout: float = LOAD_TIMEOUT) -> None:
        """Copy images from the host's engine into the node: `docker save | docker exec -i NODE docker load`."""
        load_images([self], tags, timeout)

    def running(self) -> bool:
        state = docker("inspect", "-f", "{{.State.Running}}", self.name)
        return state is not None and state.stdout.strip() == "true"

    def answers(self) -> bool:
        answer = self.docker("version", "--format", "{{.Server.Version}}", timeout=10)
        return answer is not None and answer.returncode == 0

    def kill(self) -> None:
        """The machine's power cord pulled: the node's processes die at once, its volume (its disk) stays.
        `start()` boots it again from that disk (a new container, the same /var/lib/docker)."""
        docker("kill", self.name, timeout=60)

    def missing_images(self, tags: list[str]) -> list[str]:
        """The tags whose image the node lacks or holds in another version than the host's engine."""
        def image_id(run, tag: str) -> str:
            result = run("image", "inspect", "--format", "{{.Id}}", tag, timeout=60)
            return result.stdout.strip() if result is not None and result.returncode == 0 else ""

        return [tag for tag in tags if image_id(self.docker, tag) != image_id(docker, tag)]

    def remove(self) -> None:
        """The node's container and its engine's volume (images, containers, build cache) go."""
        docker("rm", "-f", "-v", self.name, timeout=120)
        docker("volume", "rm", "-f", self.volume, timeout=120)


def load_images(nodes: list[Node], tags: list[str], timeout: float = LOAD_TIMEOUT) -> None:
    """Copy images from the host's engine into every node at once: one `docker save`, its stream fed to
    each node's `docker load` (the host reads and tars the layers once, not once per node)."""
    if not nodes or not tags:
        return
    deadline = time.monotonic() + timeout
    with ExitStack() as files:
        save_err, *errors = (files.enter_context(tempfile.TemporaryFile()) for _ in range(len(nodes) + 1))
        save = subprocess.Popen(["docker", "save", *tags], stdout=subprocess.PIPE, stderr=save_err)
        loads = [subprocess.Popen(["docker", "exec", "-i", node.name, "docker", "load", "-q"], stdin=subprocess.PIPE,
                                  stdout=subprocess.DEVNULL, stderr=error) for node, error in zip(nodes, errors)]
        try:
            open_inputs = list(loads)
            while open_inputs and (chunk := save.stdout.read(1 << 20)):
                if time.monotonic() > deadline:
                    raise NodeError(f"loading {', '.join(tags)} took more than {timeout:.0f}s")
                for load in list(open_inputs):
                    try:
                        load.stdin.write(chunk)
                    except BrokenPipeError:  # that node's load failed: its exit code and stderr say why
                        open_inputs.remove(load)
            save.stdout.close()  # when every load failed early: `docker save` ends on the closed pipe
            for load in loads:
                try:
                    load.stdin.close()
                except BrokenPipeError:
                    pass
                load.wait(max(deadline - time.monotonic(), 1))
            save.wait(30)
        except (NodeError, subprocess.TimeoutExpired):
            for process in (save, *loads):
                process.kill()
                process.wait()
            raise NodeError(f"loading {', '.join(tags)} into {', '.join(n.name for n in nodes)} took more than "
                            f"{timeout:.0f}s") from None
        finally:
            save.stdout.close()
        if save.returncode != 0:  # the cause; the nodes' loads of an empty stream fail because of it
            save_err.seek(0)
            raise NodeError(f"docker save {' '.join(tags)} failed: "
                            f"{save_err.read().decode(errors='replace').strip()[-300:]}")
        failed = []
        for node, load, error in zip(nodes, loads, errors):
            error.seek(0)
            if load.returncode != 0:
                failed.append(f"{node.name}: {error.read().decode(errors='replace').strip()[-300:]}")
        if failed:
            raise NodeError(f"loading {', '.join(tags)} failed: " + "; ".join(failed))
