"""`labkit cluster`: engines in containers joined into one swarm, images on every node, nothing left after down."""
from __future__ import annotations

import os
import subprocess
import time

import pytest

from labkit.cluster import Cluster, down, existing_nodes
from labkit.engine import docker
from labkit.node import NodeError, load_images
from labkit.resources import RUN_LABEL

pytestmark = pytest.mark.cluster

PROBE_IMAGE = "debian:bookworm-slim"


def own_cluster(run_id: str, name: str, nodes: int) -> Cluster:
    """A cluster of its own: its own names, free ports, and the run's label (`make clean` finds leftovers)."""
    return Cluster(nodes=nodes, prefix=f"labkit-cluster-{name}-{run_id}", api_port=0, gateway_port=0, flower_port=0,
                   labels={RUN_LABEL: run_id})


@pytest.fixture(scope="module")
def cluster(run_id):
    """A 2-node cluster, removed at the end."""
    cluster = own_cluster(run_id, "test", 2)
    try:
        cluster.up()
        yield cluster
    finally:
        down(cluster.prefix)


def host_cli(cluster: Cluster, *args: str) -> str:
    """The host's docker CLI talking to the manager, the way `cluster up` tells a student to."""
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "DOCKER_HOST": cluster.docker_host()})
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_up_joins_every_node_ready_with_one_manager(cluster):
    rows = [line.split() for line in host_cli(cluster, "node", "ls", "--format",
                                              "{{.Hostname}} {{.Status}} {{.ManagerStatus}}").splitlines()]
    assert sorted(rows) == [[f"{cluster.prefix}-1", "Ready", "Leader"], [f"{cluster.prefix}-2", "Ready"]]


def test_up_again_changes_nothing(cluster, capsys):
    started = time.monotonic()
    cluster.up()
    assert time.monotonic() - started < 30
    out = capsys.readouterr().out
    assert f"{cluster.prefix}-1: running" in out and f"{cluster.prefix}-2: running" in out
    assert "swarm init" not in out and "swarm join" not in out


def test_replicas_of_a_loaded_image_spread_over_the_nodes(cluster):
    cluster.load([PROBE_IMAGE])
    assert all(not node.missing_images([PROBE_IMAGE]) for node in (cluster.manager, *cluster.workers()))
    host_cli(cluster, "service", "create", "--detach", "--name", "probe", "--replicas", "2",
             "--placement-pref", "spread=node.id", PROBE_IMAGE, "sleep", "600")
    deadline, running = time.monotonic() + 60, []
    while time.monotonic() < deadline:
        running = host_cli(cluster, "service", "ps", "probe", "--filter", "desired-state=running",
                           "--format", "{{.Node}} {{.CurrentState}}").split("\n")
        running = sorted(line.split()[0] for line in running if " Running" in line)
        if len(running) == 2:
            break
        time.sleep(0.5)
    assert running == [f"{cluster.prefix}-1", f"{cluster.prefix}-2"]


def test_a_load_that_fails_names_the_image_and_the_cause(cluster):
    """One `docker save` feeds every node: a tag the host lacks fails the load, saying which and why."""
    with pytest.raises(NodeError, match=r"^docker save labkit/no-such-image:0 failed: \S"):
        load_images([cluster.manager, *cluster.workers()], ["labkit/no-such-image:0"], timeout=60)


def test_down_leaves_no_container_volume_or_network(run_id):
    cluster = own_cluster(run_id, "down", 1)
    try:
        cluster.up()
    finally:
        down(cluster.prefix)
    assert existing_nodes(cluster.prefix) == []
    for listing in (("ps", "-a", "--format", "{{.Names}}"), ("volume", "ls", "--format", "{{.Name}}"),
                    ("network", "ls", "--format", "{{.Name}}")):
        assert cluster.prefix not in docker(*listing).stdout, f"`docker {' '.join(listing[:2])}` lists a leftover"


def test_the_capstone_on_a_cluster_spreads_the_stateless_and_pins_the_rest_to_the_manager():
    from labkit.stack import ROOT, compose_model, on_cluster, to_stack

    services = on_cluster(to_stack(compose_model(ROOT / "docker-compose.yaml")))["services"]
    spread = {name for name, service in services.items()
              if service["deploy"].get("placement", {}).get("preferences") == [{"spread": "node.id"}]}
    pinned = {name for name, service in services.items()
              if "node.role == manager" in service["deploy"].get("placement", {}).get("constraints", [])}
    assert spread == {"api", "tasks-api", "worker"}
    assert all(services[name]["deploy"]["replicas"] >= 2 for name in spread)
    assert pinned == set(services) - spread  # the queue, both Redis servers, the beat, gateway and Flower
    assert services["beat"]["deploy"]["replicas"] == 1
    assert {port["published"] for port in services["gateway"]["ports"]} == {8000}
