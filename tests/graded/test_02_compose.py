"""Lab 02 — Docker Compose: the student's compose.yaml for the iris api and its Redis database.

Every stack runs under its own project name (unique to this run) with a free API_PORT, and is
removed with its volumes when its fixture ends, also on failure. The api image is built once per
module from the student's `build:` and handed to every stack, so a stack starts in seconds.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest
import requests
from docker.errors import DockerException

from labkit.resources import COMPOSE_PROJECT_LABEL, RUN_LABEL, free_port
from labkit.testing import Feedback, build_image, feedback, post_json, wait_until

pytestmark = pytest.mark.lab("02-compose")

LECTURE_REQUEST = {"data": [[5.1, 3.5, 1.4, 0.2], [2.4, 0.1, 5.3, 4.2]]}
COMPOSE_TIMEOUT = 180  # `up` waits for a healthy redis; a broken healthcheck must not hang the grader
SERVE_TIMEOUT = 60
ANONYMOUS = re.compile(r"[0-9a-f]{64}")  # the name Docker gives an anonymous volume
# Variables of the grader's own shell that would change what compose reads.
FOREIGN_ENV = ("COMPOSE_FILE", "COMPOSE_PROJECT_NAME", "COMPOSE_PROFILES", "API_PORT", "REDIS_URL")



def compose_file(lab_dir: Path) -> Path:
    for candidate in ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml"):
        if (lab_dir / candidate).is_file():
            return lab_dir / candidate
    raise Feedback("expected a compose.yaml in 02-compose/; there is none")


def quietly(action) -> None:
    """Clean-up: a thing already gone (or still in use by another run) is not an error."""
    try:
        action()
    except DockerException:
        pass


def short(text: str, lines: int = 4) -> str:
    """The last lines of a command's output, on one line (the grade table shows the first line)."""
    kept = [line.strip() for line in text.strip().splitlines() if line.strip()][-lines:]
    return " | ".join(kept) or "(no output)"


class Stack:
    """One project of the student's compose file: `docker compose -p <project> ...` with its own API_PORT."""

    def __init__(self, lab_dir: Path, project: str, docker_client, overrides: list[Path] = (),
                 api_port: int | None = None) -> None:
        self.lab_dir, self.project, self.client = lab_dir, project, docker_client
        self.files = [compose_file(lab_dir), *overrides]
        self.api_port = api_port
        self.label = f"{COMPOSE_PROJECT_LABEL}={project}"
        self.volumes: set[str] = set()
        self.env = {k: v for k, v in os.environ.items() if k not in FOREIGN_ENV}
        if api_port is not None:
            self.env["API_PORT"] = str(api_port)

    def compose(self, *args: str, timeout: float = COMPOSE_TIMEOUT, files: bool = True,
                env_file: Path | None = None) -> subprocess.CompletedProcess:
        command = ["docker", "compose", "-p", self.project]
        if files:
            command += [part for f in self.files for part in ("-f", str(f))]
        if env_file:
            command += ["--env-file", str(env_file)]
        try:
            return subprocess.run([*command, *args], cwd=self.lab_dir, env=self.env, capture_output=True,
                                  text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise Feedback(f"expected `docker compose {' '.join(args)}` to finish within {timeout:.0f}s; "
                           "it hung (a healthcheck that never passes?)") from None

    def config(self, env_file: Path | None = None) -> dict:
        result = self.compose("config", "--format", "json", env_file=env_file)
        if result.returncode != 0:
            raise Feedback(feedback("a compose file that `docker compose config` accepts",
                                    f"`docker compose config` says: {short(result.stderr)}"))
        return json.loads(result.stdout)

    def up(self, *services: str) -> None:
        result = self.compose("up", "--detach", "--no-build", "--pull", "never", *services)
        if result.returncode != 0:
            raise Feedback(feedback("`docker compose up --detach` to start the stack",
                                    f"it failed: {short(result.stderr)}", self.container("api", missing_ok=True)))

    def down(self, *flags: str) -> None:
        # Anonymous volumes carry no project label, and `down -v` forgets those of removed
        # containers: note them now, to remove them in remove().
        for container in self.client.containers.list(all=True, filters={"label": self.label}):
            self.volumes.update(m["Name"] for m in container.attrs["Mounts"] if m["Type"] == "volume")
        # Without -f: works even when the student's file no longer parses.
        self.compose("down", "--timeout", "5", *flags, files=False)

    def remove(self) -> None:
        """Containers, networks and volumes of the project, also those compose no longer knows of."""
        try:
            self.down("--volumes", "--remove-orphans")
        except (Feedback, DockerException):
            pass
        label = {"label": self.label}
        quietly(lambda: [c.remove(force=True, v=True)
                         for c in self.client.containers.list(all=True, filters=label)])
        quietly(lambda: [n.remove() for n in self.client.networks.list(filters=label)])
        quietly(lambda: [v.remove(force=True) for v in self.client.volumes.list(filters=label)])
        for name in filter(ANONYMOUS.fullmatch, self.volumes):
            quietly(lambda: self.client.volumes.get(name).remove(force=True))

    def container(self, service: str, missing_ok: bool = False):
        found = self.client.containers.list(all=True, filters={"label": [
            self.label, f"com.docker.compose.service={service}"]})
        if not found and not missing_ok:
            raise Feedback(f"expected a container of service {service!r}; there is none (docker compose ps)")
        return found[0] if found else None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.api_port}{path}"

    def wait_serving(self, after: str) -> None:
        """Wait until GET /health answers 200 on 127.0.0.1:API_PORT."""
        def healthy():
            try:
                return requests.get(self.url("/health"), timeout=2).status_code == 200
            except requests.RequestException:
                return False

        if not wait_until(healthy, SERVE_TIMEOUT, interval=0.5):
            api = self.container("api", missing_ok=True)
            state = ""
            if api is not None:
                api.reload()
                state = f" (api container {api.status}, exit code {api.attrs['State']['ExitCode']})"
            raise Feedback(feedback(f"GET /health to answer 200 on 127.0.0.1:{self.api_port} within "
                                    f"{SERVE_TIMEOUT}s {after}", f"no healthy answer{state}", api))

    def history(self) -> list:
        try:
            response = requests.get(self.url("/history?limit=100"), timeout=5)
            return response.json()["history"]
        except (requests.RequestException, ValueError, KeyError, TypeError) as error:
            raise Feedback(f"expected GET /history to answer with the history; it failed: {error}") from None

    def predict_marker(self) -> list:
        """POST a row that only this test sends; returns it, to look for in the history."""
        row = [5.0, 3.4, 1.5, round(0.2 + (time.time_ns() % 1000) / 1e6, 6)]
        response = post_json(self.url("/predict"), {"data": [row]})
        if response.status_code != 200:
            raise Feedback(feedback("HTTP 200 from POST /predict",
                                    f"HTTP {response.status_code} {response.text[:200]!r}",
                                    self.container("api", missing_ok=True)))
        return row

    def remembers(self, row: list) -> bool:
        return any(entry.get("data") == [row] for entry in self.history() if isinstance(entry, dict))


@pytest.fixture(scope="module")
def student_config(lab_dir, name, docker_client):
    """The student's compose file as `docker compose config` resolves it, API_PORT unset."""
    return Stack(lab_dir, name("config"), docker_client).config()


@pytest.fixture(scope="module")
def default_ports(lab_dir, name, docker_client, tmp_path_factory):
    """The api's published ports with API_PORT set nowhere (an empty env file replaces .env)."""
    empty = tmp_path_factory.mktemp("env") / "empty.env"
    empty.write_text("")
    config = Stack(lab_dir, name("defaults"), docker_client).config(env_file=empty)
    ports = ((config.get("services") or {}).get("api") or {}).get("ports") or []
    return [(p.get("host_ip") or "0.0.0.0", str(p.get("published")), int(p.get("target", 0))) for p in ports]


@pytest.fixture(scope="module")
def services(student_config):
    """The services api and redis of the resolved file."""
    found = student_config.get("services") or {}
    missing = [s for s in ("api", "redis") if s not in found]
    if missing:
        raise Feedback(feedback("services named api and redis", f"no service {' or '.join(missing)} "
                                f"(services: {', '.join(found) or 'none'})"))
    return found


@pytest.fixture(scope="module")
def api_image(services, docker_client, name, run_id):
    """The api image, built once from the student's `build:` (every stack then starts it as is)."""
    build = services["api"].get("build")
    if not build:
        raise Feedback(feedback("service api built from this folder (build: .)", "no build: section"))
    tag = name("api")
    build_image(docker_client, Path(build["context"]), tag, run_id)
    return tag


@pytest.fixture(scope="module")
def override(services, api_image, tmp_path_factory):
    """A second compose file: the api runs the image built above; no other service publishes a
    port (a published Redis would collide between runs and open an unprotected database)."""
    lines = ["services:", "  api:", f"    image: {api_image}"]
    for service, spec in services.items():
        if service != "api" and spec.get("ports"):
            lines += [f"  {json.dumps(service)}:", "    ports: !reset []"]
    path = tmp_path_factory.mktemp("compose") / "grader-override.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def new_stack(lab_dir, name, docker_client, override):
    """Starts fresh stacks of the student's file; each is removed with its volumes afterwards."""
    stacks: list[Stack] = []

    def start(label: str) -> Stack:
        stack = Stack(lab_dir, name(label), docker_client, [override], free_port())
        stacks.append(stack)
        stack.up()
        stack.wait_serving("after `docker compose up`")
        return stack

    yield start
    for stack in stacks:
        stack.remove()


@pytest.fixture(scope="module")
def stack(lab_dir, name, docker_client, override):
    """The stack most requirements are checked on (restarted and killed by the last of them)."""
    stack = Stack(lab_dir, name("stack"), docker_client, [override], free_port())
    try:
        stack.up()
        stack.wait_serving("after `docker compose up`")
        yield stack
    finally:
        stack.remove()


@pytest.mark.points(2)
def test_the_compose_file_is_valid(services):
    """compose.yaml is valid, with services api and redis.

    `docker compose config` accepts it.
    """
    assert services


@pytest.mark.points(2)
def test_api_answers_on_loopback_at_api_port(default_ports, stack):
    """api answers on 127.0.0.1:${API_PORT:-8000} only.

    Published as "127.0.0.1:${API_PORT:-8000}:8000", it serves the lecture's prediction there.
    """
    assert ("127.0.0.1", "8000", 8000) in default_ports, feedback(
        'api published as "127.0.0.1:${API_PORT:-8000}:8000" (port 8000 when API_PORT is unset)',
        f"host ip, host port, container port = {default_ports or 'nothing published'}")
    published = stack.container("api").attrs["NetworkSettings"]["Ports"].get("8000/tcp") or []
    addresses = sorted({(b["HostIp"], b["HostPort"]) for b in published})
    assert addresses == [("127.0.0.1", str(stack.api_port))], feedback(
        f"port 8000 of api published on 127.0.0.1:{stack.api_port} only (API_PORT={stack.api_port})",
        f"published on {addresses or 'nothing'}")
    response = post_json(stack.url("/predict"), LECTURE_REQUEST)
    assert response.status_code == 200 and response.json() == {"result": [0, 2]}, feedback(
        'HTTP 200 {"result": [0, 2]} for the lecture\'s request',
        f"HTTP {response.status_code} {response.text[:200]!r}", stack.container("api"))


@pytest.mark.points(1)
def test_redis_publishes_no_port(services):
    """redis publishes no port.

    Only the api reaches the database, over the project's network.
    """
    published = [f"{p.get('host_ip') or '0.0.0.0'}:{p.get('published')}->{p.get('target')}"
                 for p in services["redis"].get("ports") or []]
    assert not published, feedback("no `ports:` on the redis service (the database stays internal)",
                                   f"redis publishes {', '.join(published)} on the host")


@pytest.mark.points(2)
def test_api_waits_for_a_healthy_redis(services, stack):
    """api waits for a healthy redis (depends_on service_healthy).

    depends_on redis with condition service_healthy, and a healthcheck on redis that passes.
    """
    condition = ((services["api"].get("depends_on") or {}).get("redis") or {}).get("condition")
    assert condition == "service_healthy", feedback(
        "api depends_on redis with condition: service_healthy (started is not ready)",
        f"condition {condition!r}" if condition else "api does not depend on redis")
    check = services["redis"].get("healthcheck") or {}
    test = check.get("test") or []
    assert test and test[0] != "NONE" and not check.get("disable"), feedback(
        "a healthcheck on redis (e.g. redis-cli ping)", "redis has none")
    redis = stack.container("redis")

    def health():
        redis.reload()
        return (redis.attrs["State"].get("Health") or {}).get("Status")

    assert wait_until(lambda: health() == "healthy", 30), feedback(
        "the redis container to become healthy", f"its health is {health()!r}", redis)


@pytest.mark.points(1)
def test_redis_url_comes_from_the_compose_environment(services, stack):
    """REDIS_URL comes from the compose environment.

    The api service's environment sets REDIS_URL, with the service name redis as host.
    """
    url = (services["api"].get("environment") or {}).get("REDIS_URL")
    assert url, feedback("REDIS_URL in the environment: of service api", "no REDIS_URL there")
    host = urlparse(url).hostname
    assert urlparse(url).scheme == "redis" and host == "redis", feedback(
        "REDIS_URL like redis://redis:6379/0 (the service name is the host name)", f"REDIS_URL={url!r}")
    env = stack.container("api").attrs["Config"]["Env"]
    assert f"REDIS_URL={url}" in env, feedback(f"REDIS_URL={url} inside the api container",
                                               "the container does not have it")


@pytest.mark.points(2)
def test_history_survives_restart_and_recreate_of_api(stack):
    """History survives `restart api` and a recreated api container.

    The state lives in Redis, not in the api container.
    """
    row = stack.predict_marker()
    assert stack.remembers(row), feedback("the prediction in GET /history", "it is not there",
                                          stack.container("api"))
    restarted = stack.compose("restart", "api")
    assert restarted.returncode == 0, feedback("`docker compose restart api` to work",
                                               f"it failed: {short(restarted.stderr)}")
    stack.wait_serving("after `docker compose restart api`")
    assert stack.remembers(row), feedback("the history to survive `docker compose restart api`", "it was lost")
    before = stack.container("api").id
    stack.up("--force-recreate", "--no-deps", "api")
    stack.wait_serving("after recreating the api container")
    assert stack.container("api").id != before, "expected a new api container after --force-recreate"
    assert stack.remembers(row), feedback("the history to survive a recreated api container", "it was lost")


@pytest.mark.points(2)
def test_a_killed_api_process_is_restarted_by_its_restart_policy(stack, api_image, docker_client, run_id):
    """A killed api process is restarted by its restart policy.

    After SIGKILL to its main process, Docker restarts the container, and it serves again.
    """
    api = stack.container("api")
    api.reload()
    pid, restarts = api.attrs["State"]["Pid"], api.attrs["RestartCount"]
    # A crash, not `docker kill` (Docker never restarts what it was told to stop): SIGKILL to the
    # container's main process from the engine's PID namespace.
    try:
        docker_client.containers.run(api_image, ["-c", f"import os; os.kill({pid}, 9)"], entrypoint="python",
                                     user="0", pid_mode="host", remove=True, labels={RUN_LABEL: run_id})
    except DockerException as error:
        raise Feedback(f"the grader could not kill the api's main process (pid {pid}): {error}") from None

    def restarted():
        api.reload()
        return api.attrs["RestartCount"] > restarts and api.status == "running"

    if not wait_until(restarted, 30):
        policy = api.attrs["HostConfig"]["RestartPolicy"].get("Name") or "no"
        raise Feedback(feedback("Docker to restart the api container after its main process was killed",
                                f"it is {api.status} (exit code {api.attrs['State']['ExitCode']}), restart "
                                f"policy {policy!r}: set e.g. restart: unless-stopped", api))
    stack.wait_serving("after the api process was killed and restarted")


@pytest.mark.points(2)
def test_history_survives_down_and_up(new_stack):
    """History survives `down` + `up` (named volume, persistence on).

    Redis keeps /data in a named volume, which `docker compose down` keeps.
    """
    stack = new_stack("persist")
    row = stack.predict_marker()
    data = [m for m in stack.container("redis").attrs["Mounts"] if m["Destination"] == "/data"]
    stack.down()
    stack.up()
    stack.wait_serving("after `docker compose down` and `up` again")
    if not stack.remembers(row):
        if not data:
            where = "/data of redis is not in a volume: mount a named one (redis-data:/data)"
        elif data[0]["Type"] == "volume" and ANONYMOUS.fullmatch(data[0].get("Name", "")):
            where = (f"/data of redis was an anonymous volume ({data[0]['Name'][:12]}…), and `up` made "
                     "a new, empty one: name it (redis-data:/data) and declare it under top-level volumes:")
        else:
            where = (f"/data was the {data[0]['Type']} {data[0].get('Name') or data[0].get('Source')}: "
                     "is persistence on (redis-server --appendonly yes)?")
        raise Feedback(feedback("the history to survive `docker compose down` + `up`",
                                f"it was lost: {where}", stack.container("redis")))
