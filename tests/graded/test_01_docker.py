"""Lab 01 — Docker: the student's Dockerfile and .dockerignore for the iris service."""
from __future__ import annotations

import shutil
import time

import pytest
from docker.utils.build import exclude_paths
from testcontainers.core.wait_strategies import HealthcheckWaitStrategy

from labkit.testing import (Feedback, LabContainer, build_image, feedback, post_json, start_serving,
                            step_used_cache)

pytestmark = pytest.mark.lab("01-docker")

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


@pytest.mark.points(2)
def test_the_image_builds(built):
    """The image builds from Dockerfile."""
    assert built[0]


@pytest.mark.points(3)
def test_the_container_serves_correct_predictions(api):
    """The container serves POST /predict on port 8000 with the lecture's predictions [0, 2]."""
    response = post_json(api.url(path="/predict"), LECTURE_REQUEST)
    got = f"HTTP {response.status_code} {response.text[:200]!r}"
    assert response.status_code == 200 and response.json() == {"result": [0, 2]}, feedback(
        'HTTP 200 {"result": [0, 2]} for the lecture\'s request', got, api.get_wrapped_container())


@pytest.mark.points(1)
def test_the_container_runs_as_a_non_root_user(api):
    """The server runs as a non-root user (USER in the Dockerfile)."""
    uid = api.exec(["id", "-u"]).output.decode().strip()
    assert uid not in ("0", ""), feedback("a non-root user (uid other than 0)", f"uid {uid or '?'}: add a USER line")


@pytest.mark.points(2)
def test_the_image_has_a_healthcheck_that_becomes_healthy(built, docker_client, name, run_id):
    """The image has a HEALTHCHECK, and the container becomes healthy within 60 s."""
    config = docker_client.images.get(built[0]).attrs["Config"]
    if not (config.get("Healthcheck") or {}).get("Test"):
        raise Feedback("expected a HEALTHCHECK instruction in the Dockerfile; the image has none")
    container = LabContainer(built[0], run_id, name("health")).waiting_for(
        HealthcheckWaitStrategy().with_startup_timeout(60).with_poll_interval(1))
    try:
        container.start()
    except Exception as error:  # noqa: BLE001 - unhealthy, exited or timed out: all feedback
        wrapped = container.get_wrapped_container()  # None when the container was never created
        state = wrapped.attrs.get("State", {}) if wrapped else {}
        checks = (state.get("Health") or {}).get("Log") or [{}]
        raise Feedback(feedback("the container to report 'healthy' within 60 s",
                       f"{state.get('Health', {}).get('Status', state.get('Status', 'no state'))} "
                       f"(last check output: {str(checks[-1].get('Output', '')).strip()[:200]!r}; {error})",
                       wrapped)) from None
    finally:
        container.remove()


@pytest.mark.points(2)
def test_dockerignore_keeps_secrets_virtualenvs_and_caches_out(context):
    """.dockerignore keeps secrets, virtualenvs, caches and .git out of the build context."""
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
    """Editing app.py and rebuilding does not re-run the dependency install (build cache)."""
    if built[1] and not any("pip install" in line for line in built[1]):
        raise Feedback("expected a RUN step with 'pip install' in the Dockerfile; found none")
    app = context / "app.py"
    app.write_text(app.read_text() + f"\n# edited by the grader at {time.time()}\n")
    tag = name("image-edited")
    _, lines = build_image(docker_client, context, tag, run_id)
    # Pruned at once: its layers are unique to this edit, and would pile up run after run.
    docker_client.images.remove(tag, force=True)
    cached = step_used_cache(lines, "pip install")
    assert cached, feedback("the 'pip install' step to come from the cache after an edit of app.py",
                            "it ran again: COPY requirements.txt and install BEFORE copying app.py")


@pytest.mark.points(1)
def test_it_serves_with_a_production_server(api):
    """It serves with a production WSGI server (e.g. gunicorn), not Flask's development server."""
    server = post_json(api.url(path="/predict"), LECTURE_REQUEST).headers.get("Server", "")
    assert "werkzeug" not in server.lower(), feedback(
        "a production server such as gunicorn", f"the development server answered (Server: {server})")


@pytest.mark.points(1)
def test_it_stops_within_3_seconds_of_sigterm(built, name, run_id):
    """`docker stop` ends the container within 3 s (the server gets SIGTERM: exec-form CMD)."""
    container = start_serving(built[0], run_id, name("stop"))
    try:
        started = time.monotonic()
        container.get_wrapped_container().stop(timeout=10)
        took = time.monotonic() - started
    finally:
        container.remove()
    assert took < 3, feedback("the container to stop within 3 s of SIGTERM",
                              f"it took {took:.1f} s, so Docker had to kill it: use the exec form "
                              'CMD ["gunicorn", ...] so the server itself is PID 1')
