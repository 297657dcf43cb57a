"""Lab 03 — Docker Swarm: the student's stack.yaml, deployed on a live single-node swarm."""
from __future__ import annotations

import itertools
import shutil
import time

import pytest

from labkit.resources import free_port
from labkit.testing import Feedback, build_image, feedback, wait_until
from .swarm import Load, Stack, docker, swarm_state

pytestmark = pytest.mark.lab("03-swarm")

REPLICAS = 3
STACK_NUMBERS = itertools.count(1)



@pytest.fixture(scope="module")
def swarm():
    """A swarm to deploy to: joined only if the engine is not in one, and left only if we joined."""
    created = swarm_state() == "inactive"
    if created:
        docker("swarm", "init", "--advertise-addr", "127.0.0.1")
    yield
    if created:
        docker("swarm", "leave", "--force", check=False)


@pytest.fixture(scope="module")
def images(docker_client, lab_dir, name, run_id):
    """The given app built as version 1, version 2, and a version whose health check fails."""
    tags = {}
    for version, healthy in (("1", "true"), ("2", "true"), ("broken", "false")):
        tags[version] = f"{name('api')}:{version}"
        build_image(docker_client, lab_dir / "app", tags[version], run_id,
                    buildargs={"APP_VERSION": version, "APP_HEALTHY": healthy})
    return tags


@pytest.fixture
def stack(swarm, images, lab_dir, name, tmp_path):
    """The student's stack deployed with version 1; removed after the test, also on failure."""
    if not (lab_dir / "stack.yaml").is_file():
        raise Feedback("expected stack.yaml in 03-swarm/; there is none")
    folder = tmp_path / "03-swarm"
    shutil.copytree(lab_dir, folder)
    deployed = Stack(name("stack", str(next(STACK_NUMBERS))), folder, free_port(), images["1"])
    try:
        deployed.deploy()
        yield deployed
    finally:
        deployed.remove()


def converge(stack: Stack, image: str, timeout: float) -> bool:
    return bool(wait_until(lambda: stack.running_images().count(image) == REPLICAS
                           and len(stack.running_images()) == REPLICAS, timeout))


def gateway_ready(stack: Stack, timeout: float = 30) -> None:
    import requests

    def answers() -> bool:
        try:
            return requests.post(stack.url(), json={"data": [[5.1, 3.5, 1.4, 0.2]]}, timeout=3).status_code == 200
        except requests.RequestException:
            return False

    if not wait_until(answers, timeout):
        raise Feedback(feedback("POST /predict through the gateway to answer 200",
                                f"no answer on 127.0.0.1:{stack.gateway_port} within {timeout:.0f}s "
                                "(is the gateway published on ${GATEWAY_PORT} in mode: host?)"))


@pytest.mark.points(1)
def test_the_stack_file_is_valid(lab_dir):
    """stack.yaml is a valid stack file (`docker stack config`)."""
    if not (lab_dir / "stack.yaml").is_file():
        raise Feedback("expected stack.yaml in 03-swarm/; there is none")
    config = docker("stack", "config", "-c", "stack.yaml", cwd=lab_dir, env={"API_IMAGE": "x", "GATEWAY_PORT": "1"})
    assert "api:" in config and "gateway:" in config, feedback(
        "services named api and gateway", f"the file defines:\n{config[:400]}")


@pytest.mark.points(2)
def test_three_replicas_converge_within_60_seconds(stack, images):
    """The api service runs 3 replicas, all running within 60 s of `docker stack deploy`."""
    assert converge(stack, images["1"], 60), feedback(
        f"{REPLICAS} running replicas of {images['1']}", f"{stack.running_images()}; tasks:\n    {stack.task_errors()}")


@pytest.mark.points(2)
def test_requests_through_the_gateway_reach_at_least_two_replicas(stack, images):
    """Requests through the gateway are answered by at least 2 different replicas."""
    converge(stack, images["1"], 60)
    gateway_ready(stack)
    with Load(stack.url(), max_requests=60, max_seconds=30) as load:
        wait_until(lambda: load.sent >= 60, 30)
    assert load.failed == 0 and len(load.replicas) >= 2, feedback(
        "answers from at least 2 replicas (header X-Replica), none failing",
        f"{load.summary()}; replicas seen: {sorted(r for r in load.replicas if r)} "
        "(endpoint_mode: dnsrr lets the gateway see every replica)")


@pytest.mark.points(3)
def test_a_rolling_update_loses_no_request(stack, images):
    """A rolling update 1 → 2 under continuous requests loses none and ends with every replica on 2."""
    assert converge(stack, images["1"], 60), feedback("3 replicas of version 1 before the update",
                                                       str(stack.running_images()))
    gateway_ready(stack)
    started = time.monotonic()
    with Load(stack.url()) as load:
        stack.deploy(images["2"])
        done = wait_until(lambda: stack.update_state() == "completed" and converge(stack, images["2"], 0), 150)
    took = time.monotonic() - started
    print(f"rolling update: {took:.0f}s, {load.summary()}")
    assert done, feedback("the update to complete with every replica on version 2 within 150 s",
                          f"update state '{stack.update_state()}', running {stack.running_images()}")
    assert load.failed == 0, feedback("no failed request during the rolling update (order: start-first)",
                                      load.summary())


@pytest.mark.points(2)
def test_a_killed_replica_is_replaced_while_requests_keep_succeeding(stack, images, docker_client):
    """A killed replica is replaced within 30 s, and requests through the gateway keep succeeding."""
    assert converge(stack, images["1"], 60), feedback("3 running replicas", str(stack.running_images()))
    gateway_ready(stack)
    victim = docker_client.containers.list(filters={"label": f"com.docker.swarm.service.name={stack.name}_api"})[0]
    with Load(stack.url()) as load:
        victim.kill()
        replaced = wait_until(lambda: victim.id not in {c.id for c in docker_client.containers.list(
            filters={"label": f"com.docker.swarm.service.name={stack.name}_api"})} and converge(stack, images["1"], 0), 30)
        wait_until(lambda: load.sent >= 50, 10)
    print(f"replica kill: {load.summary()}")
    assert replaced, feedback("a new replica running within 30 s (restart_policy)",
                              f"running: {stack.running_images()}; tasks:\n    {stack.task_errors()}")
    assert load.failed == 0, feedback("every request through the gateway to succeed while a replica dies",
                                      load.summary())


@pytest.mark.points(3)
def test_a_broken_release_rolls_back_by_itself(stack, images):
    """Deploying a version whose health check fails rolls back to the previous version by itself."""
    assert converge(stack, images["1"], 60), feedback("3 running replicas", str(stack.running_images()))
    stack.deploy(images["broken"])
    rolled_back = wait_until(lambda: stack.update_state() == "rollback_completed", 120)
    assert rolled_back, feedback(
        "the update state 'rollback_completed' within 120 s (update_config.failure_action: rollback)",
        f"state '{stack.update_state()}', running {stack.running_images()}")
    assert converge(stack, images["1"], 30), feedback("every replica back on version 1",
                                                       str(stack.running_images()))


@pytest.mark.points(1)
def test_the_api_has_resource_limits_and_reservations(stack):
    """The api service sets CPU and memory limits and reservations."""
    resources = stack.service()["Spec"]["TaskTemplate"].get("Resources", {})
    limits, reservations = resources.get("Limits", {}), resources.get("Reservations", {})
    missing = [f"{kind}.{what}" for kind, values in (("limits", limits), ("reservations", reservations))
               for what, key in (("cpus", "NanoCPUs"), ("memory", "MemoryBytes")) if not values.get(key)]
    assert not missing, feedback("deploy.resources with cpus and memory limits and reservations",
                                 "missing " + ", ".join(missing))
