"""Names and clean-up for everything the grader creates in Docker.

Every container, network, volume and image a run creates carries the label `labkit.run=<run id>`;
the run removes exactly those at its end (also on failure or interrupt), so two runs at once never
touch each other's things. Images are removed with `noprune`, which keeps their parent layers: the
classic builder's build cache.
"""
from __future__ import annotations

import os
import secrets
import socket

import docker
from docker.errors import APIError, NotFound

RUN_LABEL = "labkit.run"
COMPOSE_PROJECT_LABEL = "com.docker.compose.project"
STACK_LABEL = "com.docker.stack.namespace"


def new_run_id() -> str:
    return f"{os.getpid()}-{secrets.token_hex(3)}"


def unique_name(run_id: str, *parts: str) -> str:
    """A Docker-safe name that cannot collide with another run's (also a compose project name)."""
    return "-".join(["labkit", run_id, *parts]).lower()


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (for API_PORT, GATEWAY_PORT and the like)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def owned(labels: dict | None, run_id: str | None) -> bool:
    """Whether a Docker object belongs to this run (or, with None, any run): by our label, or by a
    compose project named with unique_name (compose objects carry the files' labels, not ours)."""
    labels = labels or {}
    prefix = unique_name(run_id) if run_id else "labkit-"
    if RUN_LABEL in labels:
        return run_id is None or labels[RUN_LABEL] == run_id
    project = labels.get(COMPOSE_PROJECT_LABEL) or labels.get(STACK_LABEL) or ""
    return project.startswith(prefix)


def remove_labelled(client: docker.DockerClient, run_id: str | None = None) -> list[str]:
    """Remove what one run (or, with None, every run) left; returns what was removed."""
    removed: list[str] = []

    def attempt(what: str, remove) -> None:
        try:
            remove()
            removed.append(what)
        except NotFound:
            pass
        except APIError as error:
            print(f"[labkit] could not remove {what}: {error.explanation}")

    things = find_owned(client, run_id)
    for service in things["service"]:  # first: swarm would replace their containers
        attempt(f"service {service.name}", service.remove)
    for config in things["config"]:
        attempt(f"config {config.name}", config.remove)
    for container in things["container"]:
        attempt(f"container {container.name}", lambda c=container: c.remove(force=True, v=True))
    for network in things["network"]:
        attempt(f"network {network.name}", network.remove)
    for volume in things["volume"]:
        attempt(f"volume {volume.name}", lambda v=volume: v.remove(force=True))
    for image in things["image"]:
        for tag in image.tags or [image.id]:
            attempt(f"image {tag}", lambda t=tag: client.images.remove(t, force=True, noprune=True))
    return removed


def find_owned(client: docker.DockerClient, run_id: str | None) -> dict[str, list]:
    """Containers, networks, volumes and images of one run (or of every run, with None)."""
    def mine(objects, labels_of=lambda o: o.attrs.get("Labels")):
        return [o for o in objects if owned(labels_of(o), run_id)]

    swarm = client.info().get("Swarm", {}).get("ControlAvailable", False)
    return {
        "service": mine(client.services.list(), lambda s: s.attrs["Spec"].get("Labels")) if swarm else [],
        "config": mine(client.configs.list(), lambda c: c.attrs["Spec"].get("Labels")) if swarm else [],
        # ignore_removed: on a shared engine another run's container can vanish between list and inspect.
        "container": mine(client.containers.list(all=True, ignore_removed=True), lambda c: c.labels),
        "network": mine(client.networks.list(greedy=False)),
        "volume": mine(client.volumes.list()),
        "image": mine(client.images.list(filters={"label": RUN_LABEL}), lambda i: i.labels),
    }


def clean_all() -> int:
    """Remove what finished runs left behind; runs still going are left alone."""
    client = docker.from_env()
    finished_runs = {run_of(o) for objs in find_owned(client, None).values() for o in objs if finished(run_of(o))}
    removed = [line for run_id in sorted(finished_runs) for line in remove_labelled(client, run_id)]
    print("\n".join(removed) if removed else "nothing left by earlier grading runs")
    return 0


def run_of(obj) -> str:
    """The run id an owned object belongs to."""
    labels = getattr(obj, "labels", None) or obj.attrs.get("Labels") or obj.attrs.get("Spec", {}).get("Labels") or {}
    project = labels.get(COMPOSE_PROJECT_LABEL) or labels.get(STACK_LABEL) or ""
    return labels.get(RUN_LABEL) or project.removeprefix("labkit-")


def finished(run_id: str) -> bool:
    """Whether the pytest process of a run (its id starts with the pid) has ended."""
    pids = [part for part in run_id.split("-") if part.isdigit()]
    try:
        os.kill(int(pids[0]), 0)
    except (IndexError, ValueError, ProcessLookupError):
        return True
    except PermissionError:
        return False
    return False


def leftovers() -> int:
    """1 when a finished grading run left a container, network, volume or image behind."""
    things = find_owned(docker.from_env(), None)
    left = [f"{kind} {getattr(o, 'name', None) or (o.tags or [o.id])[0]}"
            for kind, objs in things.items() for o in objs if finished(run_of(o))]
    for thing in left:
        print(f"left behind: {thing}")
    print("nothing left behind" if not left else "run 'make clean' to remove it")
    return 1 if left else 0
