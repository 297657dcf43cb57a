"""Lab 01 — Docker: the student's Dockerfile and .dockerignore for the iris service.

Each check observes what its requirement is about, whatever the Dockerfile's spelling: the layers of
two builds (build cache), the processes in the container as the course's own probe image sees them
(user, server), the health status while the server answers and while it is frozen, and how the
container ends on SIGTERM.
"""
from __future__ import annotations

import shutil
import time

import pytest
from docker.errors import DockerException
from docker.utils.build import exclude_paths

from labkit.observe import freeze, install_layers, processes, requirement_names
from labkit.testing import Feedback, LabContainer, build_image, feedback, post_json, start_serving, wait_until

pytestmark = pytest.mark.lab("01-docker")

# The thresholds of the requirements (they appear in the requirement texts below).
HEALTHY_SECONDS = 60      # a container with a HEALTHCHECK is healthy within this
UNHEALTHY_SECONDS = 30    # ... and unhealthy within this once its server stops answering
KILL_AFTER_SECONDS = 20   # docker stop's grace period: a container still running then is killed ...
KILLED = 128 + 9          # ... and exits with 137 (SIGKILL)
# The grader runs the image's own HEALTHCHECK command with this timing (ns), so that a probe
# scheduled every 5 minutes is still judged on what it checks, within the bounds above.
HEALTH_TIMING = {"interval": 2_000_000_000, "timeout": 3_000_000_000, "retries": 2,
                 "start_period": HEALTHY_SECONDS * 1_000_000_000}
PRODUCTION_SERVERS = {"gunicorn", "uvicorn", "hypercorn", "waitress", "waitress-serve", "uwsgi", "granian",
                      "daphne", "bjoern", "cheroot", "meinheld"}

LECTURE_REQUEST = {"data": [[5.1, 3.5, 1.4, 0.2], [2.4, 0.1, 5.3, 4.2]]}
# Files that must never reach the build context, planted by the grader in a copy of it.
CANARIES = {
    ".env": "a secret (.env)",
    "deploy.pem": "a private key (*.pem)",
    ".venv/pyvenv.cfg": "a virtualenv (.venv/)",
    "__pycache__/app.cpython-311.pyc": "a bytecode cache (__pycache__/)",
    ".git/HEAD": "the git folder (.git/)",
}


@pytest.fixture(scope="module")
def context(lab_dir, tmp_path_factory):
    """A copy of the student's folder with the canary files added."""
    copy = tmp_path_factory.mktemp("context") / "01-docker"
    shutil.copytree(lab_dir, copy)
    for relative in CANARIES:
        (copy / relative).parent.mkdir(parents=True, exist_ok=True)
        (copy / relative).write_text("labkit canary: must not be sent to the Docker daemon\n")
    return copy


@pytest.fixture(scope="module")
def built(docker_client, context, name, run_id):
    """(tag, build output) of the student's image."""
    tag = name("image")
    _, lines = build_image(docker_client, context, tag, run_id)
    return tag, lines


@pytest.fixture(scope="module")
def api(built, name, run_id):
    """The student's container, serving on a loopback port."""
    container = start_serving(built[0], run_id, name("api"))
    yield container
    container.remove()


def server_processes(docker_client, api, run_id) -> list[dict]:
    """The processes that hold the container's listening socket on port 8000."""
    listening = [p for p in processes(docker_client, api.get_wrapped_container(), run_id) if p["listens"]]
    if not listening:
        raise Feedback("expected a process listening on port 8000 in the container; found none")
    return listening


def shown(process: dict) -> str:
    return " ".join(process["command"])[:120] or f"pid {process['pid']}"


@pytest.mark.points(2)
def test_the_image_builds(built):
    """The image builds from Dockerfile.

    True for a correct submission: the classic builder builds the folder within the build limits."""
    assert built[0]


@pytest.mark.points(3)
def test_the_container_serves_correct_predictions(api):
    """The container serves POST /predict on port 8000 with the lecture's [0, 2].

    True for a correct submission: started with no arguments, it answers HTTP 200 {"result": [0, 2]}
    on port 8000 (bound to 0.0.0.0 inside the container)."""
    response = post_json(api.url(path="/predict"), LECTURE_REQUEST)
    got = f"HTTP {response.status_code} {response.text[:200]!r}"
    assert response.status_code == 200 and response.json() == {"result": [0, 2]}, feedback(
        'HTTP 200 {"result": [0, 2]} for the lecture\'s request', got, api.get_wrapped_container())


@pytest.mark.points(1)
def test_the_container_runs_as_a_non_root_user(api, docker_client, run_id):
    """The server runs as a non-root user.

    True for a correct submission: every process that holds the listening socket on port 8000 has a
    uid other than 0 (USER in the Dockerfile, or a server that drops to another user)."""
    root = [shown(p) for p in server_processes(docker_client, api, run_id) if p["uid"] == 0]
    assert not root, feedback("the server to run as a non-root user (uid other than 0)",
                              f"uid 0 for {', '.join(root)}: add a USER line")


@pytest.mark.points(2)
def test_the_healthcheck_follows_the_server(built, docker_client, name, run_id):
    """The HEALTHCHECK reports healthy, and unhealthy once the server stops answering.

    True for a correct submission: the image's HEALTHCHECK command (run every 2 s by the grader)
    makes the container healthy within 60 s (HEALTHY_SECONDS); when every process in the container
    is frozen (SIGSTOP), so that nothing answers on port 8000, it turns unhealthy within 30 s
    (UNHEALTHY_SECONDS). A check that probes nothing (CMD true) or only that a process exists fails."""
    test = (docker_client.images.get(built[0]).attrs["Config"].get("Healthcheck") or {}).get("Test") or []
    if not test or test == ["NONE"]:
        raise Feedback("expected a HEALTHCHECK instruction in the Dockerfile; the image has none")
    container = LabContainer(built[0], run_id, name("health")).with_kwargs(healthcheck={"test": test, **HEALTH_TIMING})
    try:
        container.start()
        wrapped = container.get_wrapped_container()
        wait_until(lambda: health(wrapped) in ("healthy", "exited"), HEALTHY_SECONDS, 1)
        if health(wrapped) != "healthy":
            raise Feedback(feedback(f"the container to report 'healthy' within {HEALTHY_SECONDS} s",
                                    f"{health(wrapped)} (last check: {last_check(wrapped)!r})", wrapped))
        freeze(docker_client, wrapped, run_id)
        began = time.monotonic()
        wait_until(lambda: health(wrapped) == "unhealthy", UNHEALTHY_SECONDS, 1)
        assert health(wrapped) == "unhealthy", feedback(
            f"the container to turn 'unhealthy' within {UNHEALTHY_SECONDS} s once the server stops answering",
            f"still {health(wrapped)} after {time.monotonic() - began:.0f} s with every process stopped: the "
            "HEALTHCHECK must call GET /health on port 8000 and fail when it gets no answer")
    finally:
        try:
            if container.get_wrapped_container() is not None:
                container.get_wrapped_container().remove(force=True)
        except DockerException:
            pass


def health(container) -> str:
    container.reload()
    state = container.attrs.get("State", {})
    return (state.get("Health") or {}).get("Status", "") if state.get("Running") else "exited"


def last_check(container) -> str:
    checks = (container.attrs.get("State", {}).get("Health") or {}).get("Log") or [{}]
    return str(checks[-1].get("Output", "")).strip()[:200]


@pytest.mark.points(2)
def test_dockerignore_keeps_secrets_virtualenvs_and_caches_out(context):
    """.dockerignore keeps secrets, virtualenvs, caches and .git out of the build context.

    True for a correct submission: of the files the grader plants (.env, deploy.pem, .venv/,
    __pycache__/, .git/) none is in the build context, and app.py and requirements.txt are."""
    ignore_file = context / ".dockerignore"
    patterns = ignore_file.read_text().splitlines() if ignore_file.exists() else []
    patterns = [p.strip() for p in patterns if p.strip() and not p.strip().startswith("#")]
    sent = set(exclude_paths(str(context), patterns))
    leaked = [f"{path} ({what})" for path, what in CANARIES.items() if path in sent]
    assert not leaked, feedback("none of the planted files in the build context",
                                "these would be sent to the Docker daemon: " + ", ".join(leaked))
    for needed in ("app.py", "requirements.txt"):
        assert needed in sent, feedback(f"{needed} in the build context", f".dockerignore excludes {needed}")


@pytest.mark.points(2)
def test_editing_app_py_reuses_the_cached_dependency_layer(built, docker_client, context, name, run_id):
    """Editing app.py and rebuilding reuses the dependency layer (build cache).

    True for a correct submission, whatever installs the dependencies (pip, pip3, python -m pip,
    uv, a multi-stage COPY): the image has a layer that installs the packages of requirements.txt
    (their .dist-info in a site-packages), and after an edit of app.py the rebuilt image has the
    very same layers up to and including it."""
    wanted = requirement_names((context / "requirements.txt").read_text())
    installs = install_layers(docker_client, built[0], wanted)
    if not installs:
        raise Feedback("expected a layer that installs requirements.txt (e.g. RUN pip install -r requirements.txt); "
                       "no layer of the image adds those packages to a site-packages")
    last = max(installs)
    app = context / "app.py"
    app.write_text(app.read_text() + f"\n# edited by the grader at {time.time()}\n")
    tag = name("image-edited")
    edited_id, _ = build_image(docker_client, context, tag, run_id)
    before = docker_client.images.get(built[0]).attrs["RootFS"]["Layers"]
    after = docker_client.images.get(edited_id).attrs["RootFS"]["Layers"]
    # Pruned at once: its layers are unique to this edit, and would pile up run after run.
    docker_client.images.remove(tag, force=True)
    assert before[:last + 1] == after[:last + 1], feedback(
        "the dependency layer to come from the cache after an edit of app.py",
        "the dependencies were installed again: COPY requirements.txt and install BEFORE copying app.py")


@pytest.mark.points(1)
def test_it_serves_with_a_production_server(api, docker_client, run_id):
    """It serves with a production server, not Flask's development server.

    True for a correct submission: the process listening on port 8000 is a production WSGI/ASGI
    server (gunicorn, uvicorn, waitress, uwsgi, ...), and no answer says it is Werkzeug."""
    listening = server_processes(docker_client, api, run_id)
    if not any(is_production_server(p["command"]) for p in listening):
        raise Feedback(feedback("a production server such as gunicorn listening on port 8000",
                                f"it is {shown(listening[0])!r}: Flask's development server is not for production"))
    server = post_json(api.url(path="/predict"), LECTURE_REQUEST).headers.get("Server", "")
    assert "werkzeug" not in server.lower(), feedback(
        "a production server such as gunicorn", f"the development server answered (Server: {server})")


def is_production_server(command: list[str]) -> bool:
    """gunicorn ..., /venv/bin/uvicorn ..., python -m waitress ..., python /usr/local/bin/gunicorn ..."""
    def program(word: str) -> str:
        return word.rsplit("/", 1)[-1].split(":")[0].split()[0] if word.strip() else ""

    words = [w for w in command if w]
    if not words:
        return False
    if program(words[0]) in PRODUCTION_SERVERS:
        return True
    if program(words[0]).startswith("python") and len(words) > 1:
        if words[1] == "-m" and len(words) > 2:
            return words[2].split(".")[0] in PRODUCTION_SERVERS
        # A console script as the kernel runs it (an absolute path in a bin/ folder), not ./gunicorn.
        return words[1].startswith("/") and "/bin/" in words[1] and program(words[1]) in PRODUCTION_SERVERS
    return False


@pytest.mark.points(1)
def test_it_stops_promptly_on_sigterm(built, name, run_id):
    """`docker stop` ends it by SIGTERM alone, never by Docker's kill (exec-form CMD).

    True for a correct submission: the process that gets SIGTERM (PID 1) is the server, or passes the
    signal on to it, so the container exits by itself; one whose PID 1 ignores SIGTERM (a shell
    around the server) is killed by Docker after KILL_AFTER_SECONDS with exit code 137. Measured by
    the exit code, not a stopwatch: an honest server on a loaded machine may need several seconds."""
    container = start_serving(built[0], run_id, name("stop"))
    try:
        wrapped = container.get_wrapped_container()
        began = time.monotonic()
        wrapped.stop(timeout=KILL_AFTER_SECONDS)
        took = time.monotonic() - began
        wrapped.reload()
        code = wrapped.attrs["State"]["ExitCode"]
    finally:
        container.remove()
    assert code != KILLED, feedback(
        "the container to end by itself on SIGTERM",
        f"Docker had to kill it after {took:.0f} s (exit code {code}): use the exec form "
        'CMD ["gunicorn", ...] so that the server itself is PID 1 and gets the signal')
