"""Names and clean-up for everything the grader creates in Docker.

Every container, network, volume and image a run creates carries the label `labkit.run=<run id>`;
the run removes exactly those at its end (also on failure or interrupt), so two runs at once never
touch each other's things. Images are removed with `noprune`, which keeps their parent layers: the
classic builder's build cache.
"""
from __future__ import annotations

import os
import secrets

import docker
from docker.errors import APIError, NotFound

RUN_LABEL = "labkit.run"


def new_run_id() -> str:
    return f"{os.getpid()}-{secrets.token_hex(3)}"


def unique_name(run_id: str, *parts: str) -> str:
    """A Docker-safe name that cannot collide with another run's."""
    return "-".join(["labkit", run_id, *parts]).lower()


def remove_labelled(client: docker.DockerClient, run_id: str | None = None) -> list[str]:
    """Remove what one run (or, with None, every run) left; returns what was removed."""
    selector = f"{RUN_LABEL}={run_id}" if run_id else RUN_LABEL
    filters = {"label": selector}
    removed: list[str] = []

    def attempt(what: str, remove) -> None:
        try:
            remove()
            removed.append(what)
        except NotFound:
            pass
        except APIError as error:
            print(f"[labkit] could not remove {what}: {error.explanation}")

    for container in client.containers.list(all=True, filters=filters):
        attempt(f"container {container.name}", lambda c=container: c.remove(force=True, v=True))
    for network in client.networks.list(filters=filters):
        attempt(f"network {network.name}", network.remove)
    for volume in client.volumes.list(filters=filters):
        attempt(f"volume {volume.name}", lambda v=volume: v.remove(force=True))
    for image in client.images.list(filters=filters):
        for tag in image.tags or [image.id]:
            attempt(f"image {tag}", lambda t=tag: client.images.remove(t, force=True, noprune=True))
    return removed


def clean_all() -> None:
    client = docker.from_env()
    removed = remove_labelled(client)
    print("\n".join(removed) if removed else "nothing left by the grader")
