"""`labkit cluster`: a real multi-node Docker Swarm on one machine, each node a Docker engine in a container.

    labkit cluster up [--nodes 3] [--suite bookworm|trixie]   # 1 manager + N-1 workers, joined, all Ready
    labkit cluster load TAG ...                                # images into every node
    labkit cluster deploy [iris]                               # the week's service across the nodes
    labkit cluster down                                        # no container, volume or network left

The nodes are `labkit.node.Node`s (Debian's docker.io: bookworm's Engine 20.10 or trixie's Engine 26) on
their own Docker network `labkit-cluster`, each with a fixed address and its `/var/lib/docker` in a volume
(its disk). They are joined the way three VMs are: `docker swarm init` on the manager, then
`docker swarm join --token <docker swarm join-token worker -q> MANAGER:2377` on each worker.

The manager's engine API is published on the host's loopback, so the usual CLI drives the cluster:

    export DOCKER_HOST=tcp://127.0.0.1:12375     # or: docker exec -it labkit-cluster-1 docker node ls
    docker node ls

(no TLS: loopback only, and gone with `cluster down`; a real cluster's API is reached over ssh or TLS).

Images. `docker stack deploy` needs every node able to start every image. A team pushes its images to a
registry and each node pulls them. Here there is no registry, and a stand-in registry would cost a gzip
of every layer on push and a gunzip on every pull (minutes on a 2-core machine) for no difference a
student sees: the nodes get the very same images (the same IDs) by `docker save | docker load` from the
host's engine, only those a node lacks or holds in another version, and the stack is deployed with
`--resolve-image never` (use the image each node has; no registry to ask for a digest).
"""
from __future__ import annotations

import argparse
import ipaddress
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from labkit.engine import docker
from labkit.node import Node, NodeError, load_images, node_image

PREFIX = "labkit-cluster"
CLUSTER_LABEL = "org.labkit.cluster"
# Where the manager's engine, the gateway and Flower are published on the host's loopback (0: any free port).
API_PORT = int(os.environ.get("CLUSTER_API_PORT", "12375"))
GATEWAY_PORT = int(os.environ.get("CLUSTER_GATEWAY_PORT", "18000"))
FLOWER_PORT = int(os.environ.get("CLUSTER_FLOWER_PORT", "15555"))
READY_TIMEOUT = 90
DEPLOY_TIMEOUT = 480  # a dozen Python containers starting on the nodes of one (maybe busy) 2-core machine
STACK = "iris"
# The manager's engine also listens on its network address (published above); the rest as the image's CMD.
MANAGER_DOCKERD = ["dockerd", "--host=unix:///var/run/docker.sock", "--host=tcp://0.0.0.0:2375", "--tls=false",
                   "--default-cgroupns-mode=private"]


class ClusterError(RuntimeError):
    """The cluster did not come up (or down) as asked; the message says what to do."""


def log(message: str, started: float | None = None) -> None:
    suffix = f" ({time.monotonic() - started:.0f}s)" if started is not None else ""
    print(f"[cluster] {message}{suffix}", flush=True)


def ok(result, what: str) -> str:
    """The output of a docker call that must succeed, or ClusterError with its error."""
    if result is None:
        raise ClusterError(f"{what}: no answer in time")
    if result.returncode != 0:
        raise ClusterError(f"{what}: {result.stderr.strip()[-600:]}")
    return result.stdout.strip()


def address(subnet: ipaddress.IPv4Network, index: int) -> str:
    """Node `index`'s fixed address: a node booted again keeps it, as a machine would."""
    return str(subnet.network_address + 10 + index)


def network_exists(network: str) -> bool:
    result = docker("network", "inspect", network)
    return result is not None and result.returncode == 0


def existing_nodes(prefix: str = PREFIX) -> list[str]:
    """The names of a cluster's node containers, running or not, in node order."""
    names = ok(docker("ps", "-a", "--filter", f"label={CLUSTER_LABEL}={prefix}", "--format", "{{.Names}}"),
               "docker ps")
    return sorted(names.split(), key=lambda name: int(name.rsplit("-", 1)[-1]))


@dataclass
class Cluster:
    nodes: int = 3
    suite: str = "bookworm"
    prefix: str = PREFIX  # names its nodes (PREFIX-1 is the manager), its network and its volumes
    api_port: int = API_PORT
    gateway_port: int = GATEWAY_PORT
    flower_port: int = FLOWER_PORT
    labels: dict[str, str] = field(default_factory=dict)  # on every node, volume and the network (a test run's)
    gateway_on_every_node: bool = False  # workers publish their port 8000 too (a grader reaches any node's)

    @property
    def network(self) -> str:
        return self.prefix

    def node_name(self, index: int) -> str:
        return f"{self.prefix}-{index}"

    def node_names(self) -> list[str]:
        return [self.node_name(i) for i in range(1, self.nodes + 1)]

    # ---- the machines ----------------------------------------------------------------------------

    def node(self, index: int, subnet: ipaddress.IPv4Network | None = None) -> Node:
        """Node 1 is the manager: it publishes its engine, the gateway and Flower on the host's loopback."""
        run_args = ["--label", f"{CLUSTER_LABEL}={self.prefix}"]
        if subnet is not None:
            run_args += ["--ip", address(subnet, index)]
        published = ((self.api_port, 2375), (self.gateway_port, 8000), (self.flower_port, 5555)) if index == 1 \
            else ((0, 8000),) if self.gateway_on_every_node else ()
        for port, target in published:
            run_args += ["-p", f"127.0.0.1:{port or ''}:{target}"]
        return Node(self.node_name(index), self.suite, network=self.network, run_args=run_args,
                    command=MANAGER_DOCKERD if index == 1 else [], labels=self.labels)

    @property
    def manager(self) -> Node:
        return self.node(1)

    def workers(self) -> list[Node]:
        return [self.node(i) for i in range(2, self.nodes + 1)]

    def subnet(self) -> ipaddress.IPv4Network:
        """The cluster's network (created when missing) and its subnet."""
        subnet_of = ["network", "inspect", "-f", "{{(index .IPAM.Config 0).Subnet}}", self.network]
        if not network_exists(self.network):
            # Fixed addresses need a subnet given by the user: the one the engine picks, given back to it.
            create = ["network", "create", "--label", f"{CLUSTER_LABEL}={self.prefix}",
                      *[arg for key, value in self.labels.items() for arg in ("--label", f"{key}={value}")]]
            ok(docker(*create, self.network), "docker network create")
            picked = ok(docker(*subnet_of), "docker network inspect")
            ok(docker("network", "rm", self.network), "docker network rm")
            ok(docker(*create, "--subnet", picked, self.network), "docker network create")
        subnet = ok(docker(*subnet_of), "docker network inspect")
        return ipaddress.ip_network(subnet)

    def boot(self, index: int, subnet: ipaddress.IPv4Network) -> str:
        """Start node `index` unless its engine already answers; what was done, for the progress lines."""
        node = self.node(index, subnet)
        if node.running() and node.answers():
            return f"{node.name}: running"
        started = time.monotonic()
        node.start()  # a new container on the node's volume: a machine booted from its disk
        return f"{node.name}: started, {node.server_version()} ({time.monotonic() - started:.0f}s)"

    # ---- the swarm --------------------------------------------------------------------------------

    def up(self) -> None:
        started = time.monotonic()
        if self.nodes < 1:
            raise ClusterError("--nodes must be 1 or more")
        image = node_image(self.suite)
        for name in existing_nodes(self.prefix):
            node_image_now = ok(docker("inspect", "-f", "{{.Config.Image}}", name), "docker inspect")
            if node_image_now != image:
                raise ClusterError(f"{name} runs {node_image_now}, not {image}: `make cluster-down` first")
        for name in existing_nodes(self.prefix)[self.nodes:]:
            log(f"{name}: more nodes than --nodes {self.nodes}: removed")
            Node(name).remove()
        subnet = self.subnet()
        log(f"{self.nodes} node(s) from {image} on network {self.network} ({subnet})")
        with ThreadPoolExecutor(self.nodes) as pool:
            for line in pool.map(lambda i: self.boot(i, subnet), range(1, self.nodes + 1)):
                log(line)
        self.init_and_join(subnet)
        self.wait_ready(READY_TIMEOUT)
        log(f"{self.nodes} node(s) Ready", started)
        print(self.manager.docker("node", "ls").stdout.rstrip())
        print(f"""
Reach the manager with the docker CLI:
  export DOCKER_HOST={self.docker_host()}      # then: docker node ls, docker stack deploy ...
  docker exec -it {self.manager.name} docker node ls   # or from inside the manager
Stop it with: make cluster-down""")

    def published(self, target: int, index: int = 1) -> int:
        """The host port (on 127.0.0.1) where node `index` (1: the manager) publishes its port `target`."""
        out = ok(docker("port", self.node_name(index), f"{target}/tcp"), f"docker port {self.node_name(index)}")
        return int(out.splitlines()[0].rsplit(":", 1)[-1])

    def docker_host(self) -> str:
        """DOCKER_HOST for the manager's engine."""
        return f"tcp://127.0.0.1:{self.published(2375)}"

    def state(self, node: Node) -> str:
        return ok(node.docker("info", "--format", "{{.Swarm.LocalNodeState}}"), f"{node.name}: docker info")

    def member_ids(self) -> set[str]:
        return set(ok(self.manager.docker("node", "ls", "-q"), "docker node ls").split())

    def init_and_join(self, subnet: ipaddress.IPv4Network) -> None:
        manager, manager_ip = self.manager, address(subnet, 1)
        if self.state(manager) == "inactive":
            ok(manager.docker("swarm", "init", "--advertise-addr", manager_ip), "docker swarm init")
            log(f"{manager.name}: docker swarm init --advertise-addr {manager_ip} (the manager)")
        token = ok(manager.docker("swarm", "join-token", "worker", "-q"), "docker swarm join-token")
        members = self.member_ids()
        for index, worker in enumerate(self.workers(), start=2):
            state = self.state(worker)
            if state == "active":
                node_id = ok(worker.docker("info", "--format", "{{.Swarm.NodeID}}"), "docker info")
                if node_id in members:
                    continue
            if state != "inactive":  # in another swarm (its manager's disk was wiped) or stuck joining
                worker.docker("swarm", "leave", "--force")
            ok(worker.docker("swarm", "join", "--token", token, "--advertise-addr", address(subnet, index),
                             f"{manager_ip}:2377", timeout=90), f"{worker.name}: docker swarm join")
            log(f"{worker.name}: docker swarm join --token {token[:16]}... {manager_ip}:2377 (a worker)")

    def node_table(self) -> list[dict[str, str]]:
        out = ok(self.manager.docker("node", "ls", "--format", "{{.ID}}\t{{.Hostname}}\t{{.Status}}\t"
                                     "{{.Availability}}"), "docker node ls")
        keys = ("id", "hostname", "status", "availability")
        return [dict(zip(keys, line.split("\t"))) for line in out.splitlines() if line.strip()]

    def wait_ready(self, timeout: float, names: list[str] | None = None) -> None:
        """Poll `docker node ls` until every node is Ready; Down leftovers of a node that joined again (a new
        ID under the same name) or of a node no longer in the cluster are removed."""
        names = names or self.node_names()
        deadline = time.monotonic() + timeout
        while True:
            table = self.node_table()
            ready = {row["hostname"] for row in table if row["status"] == "Ready"}
            for row in table:
                if row["status"] == "Down" and (row["hostname"] in ready or row["hostname"] not in names):
                    self.manager.docker("node", "rm", "--force", row["id"])
            if set(names) <= ready:
                return
            if time.monotonic() > deadline:
                raise ClusterError(f"not Ready within {timeout:.0f}s: {sorted(set(names) - ready)}; "
                                   f"docker node ls:\n" + self.manager.docker("node", "ls").stdout)
            time.sleep(1)

    # ---- images -----------------------------------------------------------------------------------

    def load(self, tags: list[str]) -> None:
        """Every node gets the host's version of each tag (`docker save | docker load`, only what it lacks)."""
        started = time.monotonic()

        nodes = [self.manager, *self.workers()]
        with ThreadPoolExecutor(self.nodes) as pool:
            missing = dict(zip((node.name for node in nodes), pool.map(lambda node: node.missing_images(tags), nodes)))
        # The nodes that lack the same images get them from one `docker save` (usually: all of them).
        groups: dict[tuple[str, ...], list[Node]] = {}
        for node in nodes:
            if missing[node.name]:
                groups.setdefault(tuple(missing[node.name]), []).append(node)
        for lacking, group in groups.items():
            load_images(group, list(lacking))
        for node in nodes:
            lacking = missing[node.name]
            log(f"{node.name}: {'loaded ' + ', '.join(lacking) if lacking else 'has every image'}")
        log(f"{len(tags)} image(s) on {self.nodes} node(s)", started)

    # ---- the week's service -----------------------------------------------------------------------

    def deploy(self, name: str = STACK) -> int:
        """`make up-cluster`: the capstone as a stack placed for a cluster (`labkit.stack.on_cluster`), its
        images on every node, then the lecture's two snippets through the gateway on the manager."""
        import yaml

        from labkit import demo, stack

        services = yaml.safe_load(stack.stack_text(cluster=True))["services"]
        self.load(sorted({service["image"] for service in services.values()}))
        started = time.monotonic()
        if stack.deploy(name, timeout=DEPLOY_TIMEOUT, host=self.docker_host()) != 0:
            return 1
        log(f"stack {name} converged", started)
        print(self.manager.docker("stack", "ps", name, "--filter", "desired-state=running",
                                  "--format", "{{.Name}}\t{{.Node}}").stdout.rstrip())
        return demo.main(self.published(8000), self.published(5555),
                         logs=f"DOCKER_HOST={self.docker_host()} docker service logs {name}_api",
                         stop="make cluster-down")


def down(prefix: str = PREFIX) -> None:
    """Every node container with its volume, then the network: nothing of the cluster is left."""
    started = time.monotonic()
    names = existing_nodes(prefix)
    with ThreadPoolExecutor(max(1, len(names))) as pool:
        list(pool.map(lambda name: Node(name).remove(), names))
    if network_exists(prefix):
        ok(docker("network", "rm", prefix, timeout=60), "docker network rm")
    log(f"removed {len(names)} node(s), their volumes and the network {prefix}", started)


def current(prefix: str = PREFIX) -> Cluster:
    """The cluster as it runs now: its node count and Debian release (from the manager's image)."""
    names = existing_nodes(prefix)
    if not names:
        raise ClusterError("no cluster: `make cluster-up` first")
    image = ok(docker("inspect", "-f", "{{.Config.Image}}", names[0]), "docker inspect")
    return Cluster(nodes=len(names), suite=image.rsplit(":", 1)[-1], prefix=prefix)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="labkit cluster", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="action", required=True)
    up = sub.add_parser("up", help="start N engine nodes and join them into one swarm (idempotent)")
    up.add_argument("--nodes", type=int, help="default: as many as run now, or 3")
    up.add_argument("--suite", choices=("bookworm", "trixie"),
                    help="the nodes' Debian: bookworm = Engine 20.10 (default), trixie = Engine 26")
    load = sub.add_parser("load", help="copy images from this engine into every node")
    load.add_argument("tags", nargs="+")
    deploy = sub.add_parser("deploy", help="deploy the week's service across the cluster, call it like the lecture")
    deploy.add_argument("name", nargs="?", default=STACK)
    sub.add_parser("down", help="remove every node, its volume and the network")
    args = parser.parse_args(argv)
    try:
        if args.action == "up":
            running = current() if existing_nodes() else Cluster()
            Cluster(args.nodes or running.nodes, args.suite or running.suite).up()
        elif args.action == "load":
            current().load(args.tags)
        elif args.action == "deploy":
            return current().deploy(args.name)
        else:
            down()
    except (ClusterError, NodeError) as error:
        print(f"[cluster] {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
