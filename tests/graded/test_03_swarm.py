"""Lab 03 — Docker Swarm: the student's stack.yaml, deployed on a live single-node swarm.

Before anything is deployed, the file passes the grader's policy (labkit.policy): only the services
api and gateway, named volumes only, no host access, only the gateway publishes a port (GATEWAY_PORT).
Its interpolation sees only API_IMAGE and GATEWAY_PORT. A generated override (`-c`) bounds every
service's log and pids and gives the gateway memory/CPU limits; the api keeps its own memory/CPU
limits (a requirement grades them; the policy caps them at 1 GiB and 1 CPU) and gets the grader's
only where it sets none, and that requirement is checked on the student's file, not on the override.
"""
from __future__ import annotations

import collections
import itertools
import shutil
import time

import pytest
import yaml

from labkit import policy
from labkit.cluster import Cluster, ClusterError, down
from labkit.engine import join_single_node_swarm
from labkit.node import NodeError
from labkit.resources import RUN_LABEL, free_port
from labkit.testing import Feedback, build_image, feedback, wait_until
from .swarm import Load, Stack, docker, stack_env

pytestmark = pytest.mark.lab("03-swarm")

SERVICES = ("api", "gateway")  # the services the exercise names; no other is deployed
REPLICAS = 3
CONVERGE_SECONDS = 60  # every replica running this soon after `docker stack deploy`
UPDATE_SECONDS = 150  # a rolling update 1 -> 2 completes this soon
REPLACE_SECONDS = 30  # a killed replica is replaced this soon
ROLLBACK_SECONDS = 120  # a broken release is rolled back this soon
SERVED_BY = 2  # requests through the gateway reach at least this many replicas
STACK_NUMBERS = itertools.count(1)



@pytest.fixture(scope="module")
def swarm():
    """A swarm to deploy to: joined only if the engine is not in one, and left only if we joined."""
    try:
        created = join_single_node_swarm()
    except RuntimeError as error:
        raise Feedback(f"expected a swarm to deploy to; {error}") from None
    yield
    if created:
        docker("swarm", "leave", "--force", check=False)


@pytest.fixture(scope="module")
def images(student_stack, docker_client, lab_dir, name, run_id):
    """The given app built as version 1, version 2, and a version whose health check fails (once the
    student's file passed the policy: nothing is built for a refused file)."""
    tags = {}
    for version, healthy in (("1", "true"), ("2", "true"), ("broken", "false")):
        tags[version] = f"{name('api')}:{version}"
        build_image(docker_client, lab_dir / "app", tags[version], run_id,
                    buildargs={"APP_VERSION": version, "APP_HEALTHY": healthy})
    return tags


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """The HOME the docker CLI runs with for the student's file: an empty folder, not the grader's."""
    return tmp_path_factory.mktemp("stack-home")


def resolved(lab_dir, home, gateway_port: int = 8080) -> dict:
    """The student's stack.yaml as `docker stack config` resolves it, once it passed the policy as
    written; then the policy again on the resolved file (ports included)."""
    file = lab_dir / "stack.yaml"
    if not file.is_file():
        raise Feedback("expected stack.yaml in 03-swarm/; there is none")
    try:
        policy.enforce(policy.check_sources(policy.load(file), lab_dir, SERVICES), file.name)
        text = docker("stack", "config", "-c", "stack.yaml", cwd=lab_dir,
                      env=stack_env(home, "iris-swarm-api:1", gateway_port))
        config = yaml.safe_load(text) or {}
        policy.enforce(policy.check(config, lab_dir, SERVICES, {"gateway": {gateway_port}}), file.name)
    except policy.PolicyError as error:
        raise Feedback(str(error)) from None
    return config


@pytest.fixture(scope="module")
def student_stack(lab_dir, home):
    """The student's file, resolved and checked (what `docker stack deploy` would get)."""
    return resolved(lab_dir, home)


def replicas_of(config: dict) -> int:
    """The api replicas the file asks for (swarm's default: 1)."""
    deploy = (config.get("services") or {}).get("api", {}).get("deploy") or {}
    return int(deploy.get("replicas", 1)) if deploy.get("mode", "replicated") == "replicated" else 1


def deployable(lab_dir, student_stack, tmp_path, home, gateway_port: int) -> tuple:
    """A copy of the student's folder to deploy from, and the grader's override beside it (limits,
    bounded logs), once the file passed the policy with this GATEWAY_PORT."""
    resolved(lab_dir, home, gateway_port)  # the ports, with this GATEWAY_PORT
    folder = tmp_path / "03-swarm"
    shutil.copytree(lab_dir, folder, symlinks=True)
    # The override has the student's `version:` (a stack refuses two versions); schemas before 3.9
    # have no pids limit (the services then run with the engine's).
    version = policy.load(lab_dir / "stack.yaml").get("version")
    override = policy.write_override(tmp_path / "grader-override.yaml", policy.limits_override(
        student_stack.get("services") or {}, keep_limits={"api"}, pids=policy.stack_schema_has_pids(version)),
        version)
    return folder, override


@pytest.fixture
def stack(student_stack, swarm, images, lab_dir, name, tmp_path, home):
    """The student's stack deployed with version 1 (and the grader's override); removed after the
    test, also on failure."""
    port = free_port()
    folder, override = deployable(lab_dir, student_stack, tmp_path, home, port)
    deployed = Stack(name("stack", str(next(STACK_NUMBERS))), folder, port, images["1"], home, override,
                     replicas_of(student_stack))
    try:
        deployed.deploy()
        yield deployed
    finally:
        deployed.remove()


def converge(stack: Stack, image: str, timeout: float) -> bool:
    """Whether every replica the file asks for runs `image` (within `timeout`). Only the replicas
    requirement asks for 3: the others hold a file to its own count."""
    return bool(wait_until(lambda: stack.running_images().count(image) == stack.replicas
                           and len(stack.running_images()) == stack.replicas, timeout))


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


def served_everything(stack: Stack, load: Load, since: float) -> dict[str, int]:
    """The api task containers that served during `load`; feedback unless they served every answer
    it counted as a success (answers the gateway made up itself are not served by replicas)."""
    served: dict[str, int] = {}

    def accounted() -> bool:
        served.update(stack.served(since))
        return sum(served.values()) >= load.ok

    if not wait_until(accounted, 10):
        raise Feedback(feedback(f"every successful answer served by an api replica (their access logs hold "
                                f"{load.ok} POST /predict)", f"they hold {sum(served.values())}: the gateway "
                                "must pass requests to the api's replicas (tasks.api), not answer itself"))
    return served


@pytest.mark.points(1)
def test_the_stack_file_is_valid(student_stack):
    """stack.yaml is a valid stack file (`docker stack config`).

    True of a correct submission: `docker stack config` accepts it, it defines the services api and
    gateway (and no other), and it passes the grader's policy (named volumes only, no host paths,
    privileges or host namespaces, only the gateway publishes a port, ${GATEWAY_PORT}).
    """
    found = sorted((student_stack.get("services") or {}))
    assert set(SERVICES) <= set(found), feedback("services named api and gateway", f"services {found}")


@pytest.mark.points(2)
def test_three_replicas_converge_within_60_seconds(stack, images):
    """The api service runs 3 replicas, all running within 60 s of `docker stack deploy`.

    True of a correct submission: within 60 s (CONVERGE_SECONDS) of the deploy, `docker service ps`
    shows exactly 3 running tasks of the api, all of the deployed image, and Docker reports each
    task's container healthy (the given image's health check: it answers GET /health).
    """
    assert stack.replicas == REPLICAS, feedback(f"deploy.replicas: {REPLICAS} for the api",
                                                f"{stack.replicas} replica(s)")
    assert converge(stack, images["1"], CONVERGE_SECONDS), feedback(
        f"{REPLICAS} running replicas of {images['1']}", f"{stack.running_images()}; tasks:\n    {stack.task_errors()}")
    healthy = wait_until(lambda: stack.healthy_replicas() >= REPLICAS, CONVERGE_SECONDS)
    assert healthy, feedback(f"{REPLICAS} healthy api containers (they answer GET /health)",
                             f"{stack.healthy_replicas()} healthy: is the image's health check switched off?")


@pytest.mark.points(2)
def test_requests_through_the_gateway_reach_at_least_two_replicas(stack, images):
    """Requests through the gateway are answered by at least 2 different replicas.

    True of a correct submission: of 60 requests through the gateway none fails, and the access logs
    of at least 2 (SERVED_BY) different api task containers show they served them (observed on
    the containers, not on a header of the answers).
    """
    converge(stack, images["1"], CONVERGE_SECONDS)
    gateway_ready(stack)
    since = time.time() - 1
    with Load(stack.url(), max_requests=60, max_seconds=30) as load:
        wait_until(lambda: load.sent >= 60, 30)
    served = served_everything(stack, load, since)
    replicas = sorted(box for box, count in served.items() if count)
    assert load.failed == 0 and len(replicas) >= SERVED_BY, feedback(
        f"answers from at least {SERVED_BY} replicas, none failing",
        f"{load.summary()}; replicas that served: {replicas} "
        "(endpoint_mode: dnsrr lets the gateway see every replica)")


@pytest.mark.points(3)
def test_a_rolling_update_loses_no_request(stack, images):
    """A rolling update 1 → 2 under continuous requests loses none and ends with every replica on 2.

    True of a correct submission: while requests flow through the gateway, a redeploy with
    version 2 completes within 150 s (UPDATE_SECONDS) with every replica on version 2, no request
    fails, and api replicas served every answer.
    """
    assert converge(stack, images["1"], CONVERGE_SECONDS), feedback(f"{stack.replicas} replicas of version 1 before the update",
                                                                    str(stack.running_images()))
    gateway_ready(stack)
    started, since = time.monotonic(), time.time() - 1
    with Load(stack.url()) as load:
        stack.deploy(images["2"])
        done = wait_until(lambda: stack.update_state() == "completed" and converge(stack, images["2"], 0),
                          UPDATE_SECONDS)
    took = time.monotonic() - started
    print(f"rolling update: {took:.0f}s, {load.summary()}")
    assert done, feedback(f"the update to complete with every replica on version 2 within {UPDATE_SECONDS} s",
                          f"update state '{stack.update_state()}', running {stack.running_images()}")
    assert load.failed == 0, feedback("no failed request during the rolling update (order: start-first)",
                                      load.summary())
    served_everything(stack, load, since)


@pytest.mark.points(2)
def test_a_killed_replica_is_replaced_while_requests_keep_succeeding(stack, images, docker_client):
    """A killed replica is replaced within 30 s, and requests through the gateway keep succeeding.

    True of a correct submission: after SIGKILL to one api task container, a new replica runs within
    30 s (REPLACE_SECONDS), no request sent through the gateway after the kill fails, and api replicas
    served every answer. The one request in flight at the kill may be cut: no gateway can finish an
    answer its replica died in the middle of (seen once under load: IncompleteRead, 1 of 59).
    """
    assert converge(stack, images["1"], CONVERGE_SECONDS), feedback(f"{stack.replicas} running replicas",
                                                                    str(stack.running_images()))
    gateway_ready(stack)
    label = {"label": f"com.docker.swarm.service.name={stack.name}_api"}
    victim = docker_client.containers.list(filters=label)[0]
    since = time.time() - 1
    with Load(stack.url()) as load:  # one client: at most one request is in flight at the kill
        victim.kill()
        killed_at = time.monotonic()  # after SIGKILL: a request sent later never met the dying replica

        def a_new_replica_runs() -> bool:
            # Counted from the engine's running containers: swarm's own task list still says Running for
            # a moment after the kill, which once let a stack that restarts nothing pass.
            running = {c.id for c in docker_client.containers.list(filters=label)}
            return victim.id not in running and len(running) == stack.replicas and converge(stack, images["1"], 0)
        replaced = wait_until(a_new_replica_runs, REPLACE_SECONDS)
        wait_until(lambda: load.sent >= 50, 10)
    print(f"replica kill: {load.summary()}")
    assert replaced, feedback(f"a new replica running within {REPLACE_SECONDS} s (restart_policy)",
                              f"running: {stack.running_images()}; tasks:\n    {stack.task_errors()}")
    assert load.failed_after(killed_at) == 0 and load.failed <= 1, feedback(
        "every request sent through the gateway after the kill to succeed (restart policy, more than one replica)",
        load.summary())
    served_everything(stack, load, since)


@pytest.mark.points(3)
def test_a_broken_release_rolls_back_by_itself(stack, images):
    """Deploying a version whose health check fails rolls back to the previous version by itself.

    True of a correct submission: after a deploy of a version whose health check fails, the api's
    update state becomes rollback_completed within 120 s (ROLLBACK_SECONDS), and every replica runs
    version 1 again.
    """
    assert converge(stack, images["1"], CONVERGE_SECONDS), feedback(f"{stack.replicas} running replicas",
                                                                    str(stack.running_images()))
    stack.deploy(images["broken"])
    rolled_back = wait_until(lambda: stack.update_state() == "rollback_completed", ROLLBACK_SECONDS)
    assert rolled_back, feedback(
        f"the update state 'rollback_completed' within {ROLLBACK_SECONDS} s "
        "(update_config.failure_action: rollback)",
        f"state '{stack.update_state()}', running {stack.running_images()}")
    assert converge(stack, images["1"], 30), feedback("every replica back on version 1",
                                                       str(stack.running_images()))


@pytest.mark.points(1)
def test_the_api_has_resource_limits_and_reservations(student_stack):
    """The api service sets CPU and memory limits and reservations.

    True of a correct submission: the api's deploy.resources in stack.yaml (as `docker stack config`
    resolves it, in any syntax) has positive cpus and memory under both limits and reservations.
    Read from the student's file: the grader's override adds limits where a file has none.
    """
    resources = ((student_stack.get("services") or {}).get("api", {}).get("deploy") or {}).get("resources") or {}
    missing = [f"{kind}.{what}" for kind in ("limits", "reservations") for what in ("cpus", "memory")
               if not positive((resources.get(kind) or {}).get(what))]
    assert not missing, feedback("deploy.resources with cpus and memory limits and reservations",
                                 "missing " + ", ".join(missing))


def positive(value) -> bool:
    return value is not None and 0 < policy.to_bytes(value) < float("inf")


# ---- on a cluster of 3 nodes --------------------------------------------------------------------------

CLUSTER_NODES = 3  # 1 manager and 2 workers, each a Docker engine in a container (labkit.cluster)
SPREAD_OVER = 2  # the api's replicas run on at least this many nodes
CLUSTER_CONVERGE_SECONDS = 120  # three engines share the machine: slower than one
CLUSTER_GATEWAY_SECONDS = 60  # the gateway answers this soon once the replicas run
DRAIN_SECONDS = 90  # a drained node's replicas run elsewhere this soon
CLUSTER_GATEWAY_PORT = 8000  # the GATEWAY_PORT on the cluster: the manager's port 8000 reaches this machine


@pytest.fixture(scope="module")
def cluster(student_stack, images, run_id):
    """A 3-node swarm (the nodes of `make cluster-up`, under names of this run), with version 1 and the
    gateway's image on every node; removed at the end. Started only for a file that passed the policy."""
    cluster = Cluster(nodes=CLUSTER_NODES, prefix=f"labkit-grade-{run_id}", api_port=0, gateway_port=0,
                      flower_port=0, labels={RUN_LABEL: run_id}, gateway_on_every_node=True)
    gateway_image = ((student_stack.get("services") or {}).get("gateway") or {}).get("image")
    try:
        cluster.up()
        cluster.load([images["1"], *([gateway_image] if gateway_image and has_image(gateway_image) else [])])
        yield cluster
    except (ClusterError, NodeError) as error:
        raise Feedback(f"the grader could not start its {CLUSTER_NODES}-node cluster (not a fault of your "
                       f"stack): {error}") from None
    finally:
        down(cluster.prefix)


def has_image(tag: str) -> bool:
    return bool(docker("image", "ls", "-q", tag, check=False).strip())


@pytest.fixture(scope="module")
def cluster_stack(cluster, student_stack, images, lab_dir, name, tmp_path_factory, home):
    """The student's stack deployed with version 1 on the cluster, through its manager, as is: the file
    decides where each service runs."""
    folder, override = deployable(lab_dir, student_stack, tmp_path_factory.mktemp("on-cluster"), home,
                                  CLUSTER_GATEWAY_PORT)
    deployed = Stack(name("stack", "c"), folder, CLUSTER_GATEWAY_PORT, images["1"], home, override,
                     replicas_of(student_stack), cluster=cluster)
    deployed.deploy()
    yield deployed  # the cluster goes, with everything on it


def nodes_of(stack: Stack, service: str = "api") -> list[str]:
    return sorted(node for _, node in stack.running_tasks(service))


def enter_through_a_gateway(stack: Stack, avoid: str = "") -> None:
    """Send the grader's requests to a node that runs a gateway (the manager's, if it runs one; not the node
    `avoid`): where the gateway runs is a requirement of its own, the others do not hang on it."""
    manager = stack.cluster.manager.name
    gateways = {node for _, node in stack.running_tasks("gateway")} - {avoid}
    if not gateways:
        raise Feedback(feedback("a running gateway" + (f" on a node other than {avoid}" if avoid else ""),
                                f"gateway tasks:\n    {stack.cli('service', 'ps', f'{stack.name}_gateway')[:600]}"))
    stack.entry = min(gateways, key=lambda node: (node != manager, node))
    gateway_ready(stack, CLUSTER_GATEWAY_SECONDS)


@pytest.mark.points(2)
def test_replicas_spread_over_the_nodes_of_a_cluster(cluster_stack, images):
    """On a 3-node swarm, requests through the gateway are served by api replicas on at least 2 different nodes.

    True of a correct submission: deployed on a cluster of 3 Docker engines (1 manager, 2 workers, as
    `make cluster-up` starts), every replica the file asks for runs version 1 within 120 s
    (CLUSTER_CONVERGE_SECONDS), and of 60 requests through the gateway none fails, and the access logs
    of api containers on at least 2 (SPREAD_OVER) different nodes show they served them.
    """
    assert converge(cluster_stack, images["1"], CLUSTER_CONVERGE_SECONDS), feedback(
        f"{cluster_stack.replicas} running replicas of {images['1']} on the cluster",
        f"{cluster_stack.running_images()}; tasks:\n    {cluster_stack.task_errors()}")
    enter_through_a_gateway(cluster_stack)
    since = time.time() - 1
    with Load(cluster_stack.url(), max_requests=60, max_seconds=30) as load:
        wait_until(lambda: load.sent >= 60, 30)
    served = served_everything(cluster_stack, load, since)
    serving_nodes = sorted({box.split("/")[0] for box, count in served.items() if count})
    assert load.failed == 0 and len(serving_nodes) >= SPREAD_OVER, feedback(
        f"answers from api replicas on at least {SPREAD_OVER} nodes, none failing",
        f"{load.summary()}; nodes that served: {serving_nodes}; replicas run on {nodes_of(cluster_stack)} "
        "(a placement constraint that fits one node only? placement.preferences: spread: node.id)")


@pytest.mark.points(1)
def test_the_gateway_is_placed_on_the_manager(cluster_stack):
    """The stack keeps the gateway on the manager node, where clients connect (or runs one on every node).

    True of a correct submission: the gateway publishes its port in mode: host, on the node it runs on,
    and clients reach the cluster's manager; so the gateway's placement lets it run only on manager nodes
    (a constraint such as node.role == manager), or it runs on every node (mode: global). Swarm itself
    evaluates the placement: a probe service in global mode with the gateway's constraints runs on
    exactly the nodes the gateway may run on. The manager's published port answers HTTP.
    """
    spec = cluster_stack.service("gateway").get("Spec") or {}
    assert spec, feedback("a service gateway on the cluster", "none: " + cluster_stack.cli("stack", "services",
                                                                                          cluster_stack.name))
    constraints = ((spec.get("TaskTemplate") or {}).get("Placement") or {}).get("Constraints") or []
    manager, every_node = cluster_stack.cluster.manager.name, set(cluster_stack.cluster.node_names())
    eligible = set(cluster_stack.nodes_matching(constraints))
    placed_on_manager = eligible == {manager} if "Replicated" in (spec.get("Mode") or {}) else manager in eligible
    assert placed_on_manager, feedback(
        "the gateway placed on the manager (deploy.placement.constraints: [node.role == manager]) or on "
        "every node (deploy.mode: global)", f"its placement {constraints or 'none'} lets it run on "
        f"{sorted(eligible) or 'no node'} of {sorted(every_node)}: swarm may start it where no client connects")
    cluster_stack.entry = ""  # the manager's port, where clients connect
    assert wait_until(lambda: answers_http(cluster_stack.url("/")), CLUSTER_GATEWAY_SECONDS), feedback(
        "the gateway answering HTTP on the manager's published port",
        f"no answer within {CLUSTER_GATEWAY_SECONDS} s; gateway tasks on {nodes_of(cluster_stack, 'gateway')}")


def answers_http(url: str) -> bool:
    """Any HTTP answer: the gateway listens there (whether the api behind it answers is another requirement)."""
    import requests

    try:
        requests.get(url, timeout=3)
        return True
    except requests.RequestException:
        return False


@pytest.mark.points(3)
def test_a_drained_node_s_replicas_move_while_requests_keep_succeeding(cluster_stack, images):
    """Draining a node moves its api replicas to the other nodes within 90 s, and no request through the gateway fails.

    True of a correct submission: on the 3-node cluster, the worker running the most api replicas (one
    without the gateway, if there is one) is drained (`docker node update --availability drain`) while
    requests flow through a gateway on another node (the manager's, if it runs one: where the gateway
    runs is the requirement above, not this one); within 90 s (DRAIN_SECONDS) every replica the file
    asks for runs again, none on the drained node, no request fails, and api replicas served every answer.
    """
    assert converge(cluster_stack, images["1"], CLUSTER_CONVERGE_SECONDS), feedback(
        f"{cluster_stack.replicas} running replicas on the cluster", str(cluster_stack.running_images()))
    manager = cluster_stack.cluster.manager.name
    gateways = {node for _, node in cluster_stack.running_tasks("gateway")}
    api_on_workers = collections.Counter(node for node in nodes_of(cluster_stack) if node != manager)
    assert api_on_workers, feedback("an api replica on a worker node to drain", f"they all run on {manager}")
    drained = max(api_on_workers, key=lambda node: (node not in gateways, api_on_workers[node]))
    enter_through_a_gateway(cluster_stack, avoid=drained)
    since = time.time() - 1
    with Load(cluster_stack.url()) as load:
        wait_until(lambda: load.sent >= 20, 10)
        cluster_stack.cli("node", "update", "--availability", "drain", drained)

        def moved_off() -> bool:  # one `docker service ps` per poll: every replica of version 1, none on `drained`
            tasks = cluster_stack.running_tasks()
            return len(tasks) == cluster_stack.replicas and all(image == images["1"] and node != drained
                                                                for image, node in tasks)
        moved = wait_until(moved_off, DRAIN_SECONDS)
        sent_then = load.sent
        wait_until(lambda: load.sent >= sent_then + 50, 10)  # and requests to the replicas where they moved
    print(f"drain of {drained}: {load.summary()}")
    assert moved, feedback(f"every replica running again within {DRAIN_SECONDS} s, none on the drained {drained}",
                           f"they run on {nodes_of(cluster_stack)}; tasks:\n    {cluster_stack.task_errors()}")
    assert load.failed == 0, feedback("no failed request through the gateway while a node drains", load.summary())
    served_everything(cluster_stack, load, since)
