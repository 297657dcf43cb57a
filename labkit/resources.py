"""Names and clean-up for everything the grader creates in Docker.

Every container, network, volume and image a run creates carries the label `labkit.run=<run id>`;
the run removes exactly those at its end (also on failure or interrupt), so two runs at once never
touch each other's things. Images are removed with `noprune`, which keeps their parent layers: the
classic builder's build cache, so the next submission's build reuses them while a class is graded.
Those parents stay tagged `labkit-layers:<run id>-<n>` (the classic builder cannot label them), and
`labkit clean` removes them once their run has finished: each with the untagged layers only it used.
Layers that a tagged image or another build still uses (the base images, the dependency layers of the
course's own images) stay cached.
"""
from __future__ import annotations

import os
import secrets
import socket
from pathlib import Path

import docker
from docker.errors import APIError, NotFound

RUN_LABEL = "labkit.run"
COMPOSE_PROJECT_LABEL = "com.docker.compose.project"
STACK_LABEL = "com.docker.stack.namespace"
LAYERS = "labkit-layers"  # the repository under which a run's build layers wait for `labkit clean`


def new_run_id() -> str:
    """<pid>-s<its start time>-<random>: `labkit clean` tells a finished run by its process, and the start
    time tells that process from a later one with the same pid (a reused pid; or a run inside a container,
    e.g. `make compat`, whose pid names an unrelated process on the host)."""
    pid = os.getpid()
    return f"{pid}-s{base36(process_start(pid) or 0)}-{secrets.token_hex(3)}"  # base 36: names stay short


def base36(number: int) -> str:
    digits = ""
    while True:
        number, digit = divmod(number, 36)
        digits = "0123456789abcdefghijklmnopqrstuvwxyz"[digit] + digits
        if not number:
            return digits


def process_start(pid: int) -> int | None:
    """When a process started, in clock ticks since boot (/proc/<pid>/stat); None without /proc (macOS)."""
    try:
        after_name = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(after_name[19])  # field 22, starttime; the split began at field 3
    except (OSError, ValueError, IndexError):
        return None


def unique_name(run_id: str, *parts: str) -> str:
    """A Docker-safe name that cannot collide with another run's (also a compose project name)."""
    return "-".join(["labkit", run_id, *parts]).lower()


# Below every OS's ephemeral range (Linux 32768-60999, macOS and Windows 49152-65535): a port that a
# test frees and binds again (`down`, then `up`) is not taken meanwhile by some outgoing connection's
# local port ("bind: address already in use", seen in lab 02's down-and-up check under load).
PORT_RANGE = range(20000, 32000)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (for API_PORT, GATEWAY_PORT and the like), outside the
    ephemeral range; random, so that two runs at once rarely pick the same one."""
    for _ in range(200):
        port = secrets.choice(PORT_RANGE)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free TCP port on 127.0.0.1 in {PORT_RANGE.start}-{PORT_RANGE.stop - 1}")


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
    for number, image in enumerate(things["image"]):
        # An image built FROM another of the run's images (lab 04's retrained model) has parents that
        # inherit the run's label: no cache for anyone else, so they go with it (kept, one of them was
        # tagged as build layers with the label still on it, and clean --check called it left behind).
        derived = built_on_own_image(client, image)
        if not derived:
            keep_build_layers(client, image, f"{LAYERS}:{run_of(image)}-{number}".lower())
        for tag in image.tags or [image.id]:
            attempt(f"image {tag}", lambda t=tag: client.images.remove(t, force=True, noprune=not derived))
    for image in (i for i in things["layers"] if finished(layers_run(i))):  # a finished run's (labkit clean)
        for tag in (t for t in image.tags if t.startswith(f"{LAYERS}:")):  # never another tag of the image
            attempt(f"build layers {tag}", lambda t=tag: client.images.remove(t, noprune=False))
    return removed


def built_on_own_image(client: docker.DockerClient, image) -> bool:
    """Whether an image's parent carries the same run's label (a build FROM one of the run's images)."""
    parent = image.attrs.get("Parent") or image.attrs.get("ParentId")
    try:
        return bool(parent) and (client.images.get(parent).labels or {}).get(RUN_LABEL) == run_of(image)
    except (NotFound, APIError):
        return False


def keep_build_layers(client: docker.DockerClient, image, tag: str) -> None:
    """Name the untagged parent of an image about to go: its layers stay as build cache, findable."""
    parent = image.attrs.get("Parent") or image.attrs.get("ParentId")
    try:
        if parent and not client.images.get(parent).tags:
            client.api.tag(parent, tag)
    except (NotFound, APIError):
        pass


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
        "image": mine(images(client, filters={"label": RUN_LABEL}), lambda i: i.labels),
        "layers": [i for i in images(client, name=LAYERS) if run_id is None or layers_run(i) == run_id],
    }


def images(client: docker.DockerClient, **query) -> list:
    """client.images.list(**query), less the images another run removes between the list and their
    inspection (a shared engine: `make clean` ran into a 404 while a grading run cleaned up)."""
    found = []
    for summary in client.api.images(**query):
        try:
            found.append(client.images.get(summary["Id"]))
        except NotFound:
            pass
    return found


def layers_run(image) -> str:
    """The run a labkit-layers image's tag names."""
    tag = next((t for t in image.tags if t.startswith(f"{LAYERS}:")), "")
    return tag.partition(":")[2].rpartition("-")[0]


def clean_all() -> int:
    """Remove what finished runs left behind; runs still going are left alone."""
    client = docker.from_env()
    finished_runs = {run_of(o) for objs in find_owned(client, None).values() for o in objs if finished(run_of(o))}
    removed = [line for run_id in sorted(finished_runs) for line in remove_labelled(client, run_id)]
    print("\n".join(removed) if removed else "nothing left by earlier grading runs")
    return 0


def run_of(obj) -> str:
    """The run id an owned object belongs to."""
    if any(t.startswith(f"{LAYERS}:") for t in getattr(obj, "tags", None) or []):
        return layers_run(obj)
    labels = getattr(obj, "labels", None) or obj.attrs.get("Labels") or obj.attrs.get("Spec", {}).get("Labels") or {}
    project = labels.get(COMPOSE_PROJECT_LABEL) or labels.get(STACK_LABEL) or ""
    return labels.get(RUN_LABEL) or project.removeprefix("labkit-")


def finished(run_id: str) -> bool:
    """Whether the pytest process of a run (its id starts with the pid, then s<start time>) has ended."""
    parts = run_id.split("-")
    at = next((n for n, part in enumerate(parts) if part.isdigit()), None)
    try:
        pid = int(parts[at])
        os.kill(pid, 0)
    except (TypeError, ValueError, ProcessLookupError):
        return True
    except PermissionError:
        pass
    stamp = parts[at + 1] if at + 1 < len(parts) else ""
    started = int(stamp[1:], 36) if stamp[:1] == "s" and stamp[1:].isalnum() else 0
    now = process_start(pid) if started else None
    return now is not None and now != started  # another process has that pid now


def leftovers() -> int:
    """1 when a finished grading run left a container, network, volume or image behind. Its build
    layers, kept as cache on purpose, are reported with the disk space `labkit clean` gives back."""
    client = docker.from_env()
    things = find_owned(client, None)
    cached = [o for o in things.pop("layers") if finished(run_of(o))]
    left = [f"{kind} {getattr(o, 'name', None) or (o.tags or [o.id])[0]}"
            for kind, objs in things.items() for o in objs if finished(run_of(o))]
    for thing in left:
        print(f"left behind: {thing}")
    print("nothing left behind" if not left else "run 'make clean' to remove it")
    if cached:
        print(f"build cache of finished grading runs: {len(cached)} image(s), "
              f"{reclaimable(client, cached) / 1e6:.0f} MB that 'make clean' gives back")
    return 1 if left else 0


def reclaimable(client: docker.DockerClient, images: list) -> int:
    """Bytes freed by removing these images with their untagged parents that nothing else uses."""
    everything = client.api.images(all=True)
    by_id = {info["Id"]: info for info in everything}
    going = {image.id for image in images}
    size = 0
    frontier = list(going)
    while frontier:  # own size of each going image; then its parent, once all its children go
        info = by_id.get(frontier.pop())
        if info is None:
            continue
        parent = by_id.get(info.get("ParentId") or "")
        size += info["Size"] - (parent["Size"] if parent else 0)
        if parent and parent["Id"] not in going and not [t for t in parent.get("RepoTags") or []
                                                         if t != "<none>:<none>"]:
            siblings = [i for i in everything if i.get("ParentId") == parent["Id"]]
            if all(s["Id"] in going for s in siblings):
                going.add(parent["Id"])
                frontier.append(parent["Id"])
    return size
