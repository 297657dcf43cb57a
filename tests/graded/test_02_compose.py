"""Lab 02 — Docker Compose: the student's compose.yaml for the iris api and its Redis database.

Before anything starts, the file passes the grader's policy (labkit.policy: only the services api
and redis, named volumes only, no host access). Compose then runs with a minimal environment (its
interpolation sees only API_PORT), and every service gets memory/CPU/pids limits and a bounded log
through a generated override file; the student's file is never edited. Every stack runs under its
own project name (unique to this run) with a free API_PORT, and is removed with its volumes when
its fixture ends, also on failure. The api image is built once per module from the student's
`build:` and handed to every stack, so a stack starts in seconds.
"""
from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest
import requests
from docker.errors import DockerException

from labkit import policy
from labkit.resources import COMPOSE_PROJECT_LABEL, RUN_LABEL, free_port
from labkit.testing import Feedback, build_image, feedback, post_json, wait_until

pytestmark = pytest.mark.lab("02-compose")

SERVICES = ("api", "redis")  # the services the exercise names; no other is started
LECTURE_REQUEST = {"data": [[5.1, 3.5, 1.4, 0.2], [2.4, 0.1, 5.3, 4.2]]}
COMPOSE_TIMEOUT = 180  # `up` waits for a healthy redis; a broken healthcheck must not hang the grader
SERVE_TIMEOUT = 90  # the api imports scikit-learn and fits its model: slow on a loaded machine
HEALTHY_TIMEOUT = 30  # redis must turn healthy this soon after `up`
PROBE_TIMEOUT = 10  # the redis healthcheck, run where no Redis answers, must fail within this
RESTART_TIMEOUT = 30  # a killed api process must be running again this soon
ANONYMOUS = re.compile(r"[0-9a-f]{64}")  # the name Docker gives an anonymous volume
KILLER_IMAGE = "debian:bookworm-slim"  # a course image, not the student's, kills the api process


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
    return " | ".join(kept)[-600:] or "(no output)"


def health_of(container) -> str | None:
    container.reload()
    return (container.attrs["State"].get("Health") or {}).get("Status")


class Stack:
    """One project of the student's compose file: `compose -p <project> ...` with its own API_PORT,
    a minimal environment, and no .env of the submission (an empty --env-file replaces it)."""

    def __init__(self, lab_dir: Path, project: str, docker_client, home: Path, overrides: list[Path] = (),
                 api_port: int | None = None) -> None:
        self.lab_dir, self.project, self.client = lab_dir, project, docker_client
        self.files = [compose_file(lab_dir), *overrides]
        self.api_port = api_port
        self.label = f"{COMPOSE_PROJECT_LABEL}={project}"
        self.volumes: set[str] = set()
        self.env_file = home / "empty.env"
        self.env_file.touch()
        self.env = policy.minimal_env(home, **({"API_PORT": str(api_port)} if api_port is not None else {}))

    def compose(self, *args: str, timeout: float = COMPOSE_TIMEOUT, files: bool = True,
                waiting_for=None) -> subprocess.CompletedProcess:
        command = [*policy.compose_command(), "-p", self.project, "--env-file", str(self.env_file)]
        if files:
            command += [part for f in self.files for part in ("-f", str(f))]
        try:
            return subprocess.run([*command, *args], cwd=self.lab_dir, env=self.env, capture_output=True,
                                  text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            waited = f"; it was still waiting for {waiting_for()}" if waiting_for else " (it hung)"
            raise Feedback(f"expected `docker compose {' '.join(args[:2])}` to finish within {timeout:.0f}s"
                           f"{waited}") from None

    def config(self) -> dict:
        result = self.compose("config", "--format", "json")
        if result.returncode != 0:
            raise Feedback(feedback("a compose file that `docker compose config` accepts",
                                    f"`docker compose config` says: {short(result.stderr)}"))
        return json.loads(result.stdout)

    def not_ready(self) -> str:
        """The services `up` is still waiting for, with their state (for the deadline's feedback)."""
        states = []
        for service in SERVICES:
            box = self.container(service, missing_ok=True)
            if box is None:
                states.append(f"{service} (not created yet)")
            elif box.status != "running" or health_of(box) not in (None, "healthy"):
                states.append(f"{service} ({box.status}, health {health_of(box)})")
        return ", ".join(states) or "nothing visible (compose itself hung)"

    def up(self, *services: str) -> None:
        result = self.compose("up", "--detach", "--no-build", "--pull", "never", *services,
                              waiting_for=self.not_ready)
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


def obeys_policy(check, file_name: str) -> None:
    try:
        policy.enforce(check(), file_name)
    except policy.PolicyError as error:
        raise Feedback(str(error)) from None


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """The HOME compose runs with: an empty folder, not the grader's."""
    return tmp_path_factory.mktemp("compose-home")


@pytest.fixture(scope="module")
def student_config(lab_dir, name, docker_client, home):
    """The student's compose file as `docker compose config` resolves it (API_PORT unset), once it
    passed the policy: as written (before compose reads anything it names), then as resolved."""
    file = compose_file(lab_dir)
    obeys_policy(lambda: policy.check_sources(policy.load(file), lab_dir, SERVICES), file.name)
    config = Stack(lab_dir, name("config"), docker_client, home).config()
    obeys_policy(lambda: policy.check(config, lab_dir, SERVICES), file.name)
    return config


@pytest.fixture(scope="module")
def default_ports(student_config):
    """The api's published ports with API_PORT set nowhere (the grader's environment lacks it)."""
    ports = ((student_config.get("services") or {}).get("api") or {}).get("ports") or []
    return [(p.get("host_ip") or "0.0.0.0", str(p.get("published")), int(p.get("target", 0))) for p in ports]


@pytest.fixture(scope="module")
def services(student_config):
    """The services api and redis of the resolved file."""
    found = student_config.get("services") or {}
    missing = [s for s in SERVICES if s not in found]
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
    port (a published Redis would collide between runs and open an unprotected database); every
    service has the grader's limits and a bounded log, and no fixed container name."""
    lines = {"api": {"image": api_image}}
    lines.update({service: {"ports": policy.EMPTY} for service, spec in services.items()
                  if service != "api" and spec.get("ports")})
    overrides = policy.merge(policy.merge(policy.limits_override(services), policy.reset_short_limits(services)),
                             lines)
    return policy.write_override(tmp_path_factory.mktemp("compose") / "grader-override.yaml", overrides)


@pytest.fixture
def new_stack(lab_dir, name, docker_client, override, home):
    """Starts fresh stacks of the student's file; each is removed with its volumes afterwards."""
    stacks: list[Stack] = []

    def start(label: str, up: bool = True) -> Stack:
        stack = Stack(lab_dir, name(label), docker_client, home, [override], free_port())
        stacks.append(stack)
        if up:
            stack.up()
            stack.wait_serving("after `docker compose up`")
        return stack

    yield start
    for stack in stacks:
        stack.remove()


@pytest.fixture(scope="module")
def stack(lab_dir, name, docker_client, override, home):
    """The stack most requirements are checked on (restarted and killed by the last of them)."""
    stack = Stack(lab_dir, name("stack"), docker_client, home, [override], free_port())
    try:
        stack.up()
        stack.wait_serving("after `docker compose up`")
        yield stack
    finally:
        stack.remove()


@pytest.mark.points(2)
def test_the_compose_file_is_valid(services):
    """compose.yaml is valid, with services api and redis.

    True of a correct submission: `docker compose config` accepts the file, it defines the services
    api and redis (and no other), and it passes the grader's policy (named volumes only, no host
    paths, privileges or host namespaces, no files from outside the folder).
    """
    assert services


@pytest.mark.points(2)
def test_api_answers_on_loopback_at_api_port(default_ports, stack):
    """api answers on 127.0.0.1:${API_PORT:-8000} only.

    True of a correct submission: with API_PORT unset the file publishes the api's port 8000 on
    127.0.0.1:8000; with API_PORT set, the running api container is published on 127.0.0.1:API_PORT
    and nowhere else, and answers the lecture's prediction there.
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

    True of a correct submission: the resolved file publishes no port of redis on the host; only
    the api reaches the database, over the project's network.
    """
    published = [f"{p.get('host_ip') or '0.0.0.0'}:{p.get('published')}->{p.get('target')}"
                 for p in services["redis"].get("ports") or []]
    assert not published, feedback("no `ports:` on the redis service (the database stays internal)",
                                   f"redis publishes {', '.join(published)} on the host")


def healthcheck_command(check: dict) -> list[str]:
    """The command Docker runs for a compose healthcheck `test`."""
    test = check["test"] if isinstance(check["test"], list) else ["CMD-SHELL", check["test"]]
    return ["/bin/sh", "-c", " ".join(test[1:])] if test[0] == "CMD-SHELL" else test[1:]


def probe_without_redis(new_stack, check: dict) -> tuple[int | None, str]:
    """Run the redis service's healthcheck command in a container of that service in which no Redis
    runs (its own project: nothing answers there); (exit code or None on time-out, output)."""
    probe = new_stack("probe", up=False)
    started = probe.compose("run", "--detach", "--no-deps", "--name", probe.project + "-redis",
                            "--entrypoint", "sleep", "redis", str(COMPOSE_TIMEOUT))
    if started.returncode != 0:
        raise Feedback(feedback("a redis container to run the healthcheck in",
                                f"`docker compose run redis` failed: {short(started.stderr)}"))
    try:
        ran = subprocess.run(["docker", "exec", probe.project + "-redis", *healthcheck_command(check)],
                             capture_output=True, text=True, timeout=PROBE_TIMEOUT)
    except subprocess.TimeoutExpired:
        return None, f"no answer within {PROBE_TIMEOUT} s"
    return ran.returncode, short(ran.stdout + ran.stderr, 2)


@pytest.mark.points(2)
def test_api_waits_for_a_healthy_redis(services, stack, new_stack):
    """api waits for a healthy redis (depends_on service_healthy).

    True of a correct submission: api depends on redis with condition service_healthy, and redis
    has a healthcheck that passes once Redis answers (the stack's redis turns healthy within
    30 s, HEALTHY_TIMEOUT) and fails while Redis does not answer (run in a redis container where
    no Redis server runs, it fails or times out within 10 s, PROBE_TIMEOUT).
    """
    condition = ((services["api"].get("depends_on") or {}).get("redis") or {}).get("condition")
    assert condition == "service_healthy", feedback(
        "api depends_on redis with condition: service_healthy (started is not ready)",
        f"condition {condition!r}" if condition else "api does not depend on redis")
    check = services["redis"].get("healthcheck") or {}
    assert check.get("test") and check["test"][0] != "NONE" and not check.get("disable"), feedback(
        "a healthcheck on redis (e.g. redis-cli ping)", "redis has none")
    redis = stack.container("redis")
    assert wait_until(lambda: health_of(redis) == "healthy", HEALTHY_TIMEOUT), feedback(
        f"the redis container to become healthy within {HEALTHY_TIMEOUT} s", f"its health is {health_of(redis)!r}",
        redis)
    code, output = probe_without_redis(new_stack, check)
    assert code != 0, feedback(
        "the redis healthcheck to fail while Redis does not answer (the grader ran it in a redis "
        "container where no Redis server runs)",
        f"it succeeded ({output}): it checks nothing about Redis; ask Redis itself, e.g. redis-cli ping")


@pytest.mark.points(1)
def test_redis_url_comes_from_the_compose_environment(services, stack):
    """REDIS_URL comes from the compose environment.

    True of a correct submission: the api service's environment (in any syntax: map, list, or an
    env_file in the folder) sets REDIS_URL with the service name redis as host, and the running api
    container has it.
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

    True of a correct submission: a prediction stored through the api is still in GET /history
    after `docker compose restart api` and after the api container is recreated: the state lives
    in Redis, not in the api container.
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
def test_a_killed_api_process_is_restarted_by_its_restart_policy(stack, docker_client, run_id):
    """A killed api process is restarted by its restart policy.

    True of a correct submission: after SIGKILL to the api container's main process, Docker
    restarts the container within 30 s (RESTART_TIMEOUT), and it serves again.
    """
    api = stack.container("api")
    api.reload()
    pid, restarts = api.attrs["State"]["Pid"], api.attrs["RestartCount"]
    # A crash, not `docker kill` (Docker never restarts what it was told to stop): SIGKILL to the
    # container's main process from the engine's PID namespace, by a course image, never the student's.
    try:
        docker_client.containers.run(KILLER_IMAGE, ["sh", "-c", f"kill -9 {pid}"], pid_mode="host", user="0",
                                     network_mode="none", mem_limit="64m", remove=True,
                                     labels={RUN_LABEL: run_id})
    except DockerException as error:
        raise Feedback(f"the grader could not kill the api's main process (pid {pid}): {error}") from None

    def restarted():
        api.reload()
        return api.attrs["RestartCount"] > restarts and api.status == "running"

    if not wait_until(restarted, RESTART_TIMEOUT):
        policy_name = api.attrs["HostConfig"]["RestartPolicy"].get("Name") or "no"
        raise Feedback(feedback("Docker to restart the api container after its main process was killed",
                                f"it is {api.status} (exit code {api.attrs['State']['ExitCode']}), restart "
                                f"policy {policy_name!r}: set e.g. restart: unless-stopped", api))
    stack.wait_serving("after the api process was killed and restarted")


@pytest.mark.points(2)
def test_history_survives_down_and_up(new_stack):
    """History survives `down` + `up` (named volume, persistence on).

    True of a correct submission: a prediction stored before `docker compose down` (which keeps
    named volumes) is in GET /history after `up`: Redis keeps its data in a named volume.
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
