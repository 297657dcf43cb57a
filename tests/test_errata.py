"""week/errata.md, proven: each slide snippet run as written fails the way the erratum says, and the
fix works. The snippets are in tests/fixtures/errata/, copied from the slides (plus the imports the
slides leave out); a fix is applied as the text change the erratum names, so the test runs exactly
what a student would type. Numbers in the names (e1...) are the errata's numbers.
"""
from __future__ import annotations

import importlib.util
import itertools
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import requests

from labkit.resources import RUN_LABEL
from labkit.testing import LabContainer, build_image, post_json, start_serving, wait_until

ROOT = Path(__file__).resolve().parent.parent
SNIPPETS = ROOT / "tests" / "fixtures" / "errata"
LECTURE_SERVER = ROOT / "labs" / "01-docker" / "lecture-server"
LECTURE_REQUEST = {"data": [[5.1, 3.5, 1.4, 0.2], [2.4, 0.1, 5.3, 4.2]]}
OFFLINE_BASE = "FROM debian:bookworm-slim"  # no ubuntu:16.04 offline; apt behaves the same here
_modules = itertools.count()


def snippet(name: str, *fixes: tuple[str, str]) -> str:
    """A slide snippet's text with the given (old, new) fixes applied; each old text must be there."""
    text = (SNIPPETS / name).read_text()
    for old, new in fixes:
        assert old in text, f"{name} no longer contains {old!r}"
        text = text.replace(old, new)
    return text


def load(name: str, *fixes: tuple[str, str]):
    """Import a Python snippet (with fixes) as a fresh module."""
    module_name = f"errata_{Path(name).stem}_{next(_modules)}"
    path = Path(f"/nonexistent/{module_name}.py")
    spec = importlib.util.spec_from_loader(module_name, loader=None, origin=str(path))
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # Celery names tasks after their module
    exec(compile(snippet(name, *fixes), str(SNIPPETS / name), "exec"), module.__dict__)
    return module


def compose_config(file: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", "compose", "-f", str(file), "config", "--quiet"],
                          capture_output=True, text=True, timeout=60)


# --- E1-E4: the Dockerfiles -------------------------------------------------------------------

def docker_build(client, context: Path, dockerfile: str, tag: str, run_id: str) -> tuple[bool, str]:
    """Build `dockerfile` in `context` with the classic builder: (succeeded, the whole output)."""
    (context / "Dockerfile").write_text(dockerfile)
    output: list[str] = []
    for chunk in client.api.build(path=str(context), tag=tag, rm=True, forcerm=True, decode=True,
                                  labels={RUN_LABEL: run_id}, timeout=600):
        output.append(chunk.get("stream", "") + chunk.get("error", ""))
        if "error" in chunk:
            return False, "".join(output)
    return True, "".join(output)


@pytest.fixture()
def flask_context(tmp_path):
    """A build context holding the slide's server.py, as the slide's Dockerfile expects."""
    shutil.copy(SNIPPETS / "server.py", tmp_path / "server.py")
    return tmp_path


def test_e1_the_first_image_runs_from_a_maintained_base(docker_client, name, run_id):
    """E1: the lab's first image (debian:bookworm-slim instead of end-of-life ubuntu:16.04) prints hello."""
    assert "FROM ubuntu:16.04" in snippet("hello.Dockerfile")
    tag = name("hello")
    build_image(docker_client, ROOT / "labs" / "01-docker" / "hello", tag, run_id)
    output = docker_client.containers.run(tag, remove=True, labels={RUN_LABEL: run_id})
    assert output.decode().strip() == "hello"


def test_e1_no_lab_builds_on_ubuntu_16_04():
    """E1: no Dockerfile of the labs, exercises or solutions names the end-of-life ubuntu:16.04."""
    dockerfiles = [p for top in ("labs", "solutions", "exercises") for p in (ROOT / top).rglob("*Dockerfile*")]
    assert dockerfiles
    from_ubuntu = re.compile(r"^\s*FROM\s+ubuntu:16\.04", re.MULTILINE | re.IGNORECASE)
    assert not [p for p in dockerfiles if from_ubuntu.search(p.read_text())]


def test_e2_apt_get_install_without_update_finds_no_package(docker_client, flask_context, name, run_id):
    """E2: `apt-get install` without `apt-get update` fails: the image ships no package lists."""
    dockerfile = snippet("flask.Dockerfile", ("FROM ubuntu:16.04", OFFLINE_BASE))
    ok, output = docker_build(docker_client, flask_context, dockerfile, name("e2"), run_id)
    assert not ok and "Unable to locate package python3" in output, output[-2000:]


def test_e3_apt_get_install_without_yes_aborts(docker_client, flask_context, name, run_id):
    """E3: with `update` but without `-y`, apt asks "Do you want to continue?", nobody answers, it aborts."""
    dockerfile = snippet("flask.Dockerfile", ("FROM ubuntu:16.04", OFFLINE_BASE),
                         ("RUN apt-get install", "RUN apt-get update && apt-get install"))
    ok, output = docker_build(docker_client, flask_context, dockerfile, name("e3"), run_id)
    assert not ok and "Do you want to continue? [Y/n] Abort." in output, output[-2000:]


def test_e4_the_fixed_apt_line_installs_but_system_pip_refuses_flask(docker_client, flask_context, name, run_id):
    """E2-E4: the fixed apt line installs Python; then `pip install Flask` into the system Python is refused (PEP 668)."""
    dockerfile = snippet("flask.Dockerfile", ("FROM ubuntu:16.04", OFFLINE_BASE), (
        "RUN apt-get install python3 python3-pip",
        "RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-pip"
        " && rm -rf /var/lib/apt/lists/*"))
    ok, output = docker_build(docker_client, flask_context, dockerfile, name("e4"), run_id)
    assert re.search(r"Step 3/\d+ : RUN pip install Flask", output), output[-2000:]  # the apt step succeeded
    assert not ok and "externally-managed-environment" in output, output[-2000:]


@pytest.fixture(scope="module")
def lecture_image(docker_client, name, run_id):
    """The lab's fixed lecture server image (python:3.11-slim base), built from the cache."""
    tag = name("lecture-server")
    build_image(docker_client, LECTURE_SERVER, tag, run_id)
    return tag


def test_e4_to_e8_the_fixed_lecture_server_serves_the_lecture_request(lecture_image, name, run_id):
    """E4-E8: the lab's fixed image and server answer the lecture's client with [0, 2]."""
    container = start_serving(lecture_image, run_id, name("fixed"))
    try:
        response = post_json(container.url(path="/predict"), LECTURE_REQUEST)
        assert (response.status_code, response.json()) == (200, {"result": [0, 2]})
    finally:
        container.remove()


# --- E5-E8: the Flask server ------------------------------------------------------------------

def test_e5_the_server_as_written_starts_no_server():
    """E5: `python3 server.py` with the slide's code trains the model and exits: nothing serves."""
    result = subprocess.run([sys.executable, str(SNIPPETS / "server.py")], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0 and result.stdout == ""


def test_e5_app_run_with_defaults_is_unreachable_from_outside_the_container(lecture_image, name, run_id):
    """E5: `app.run()` listens on 127.0.0.1 inside the container: answers inside, not through -p."""
    default_run = ("exec(open('/app/server.py').read()"
                   ".replace(\"host='0.0.0.0', \", ''))")  # app.run(port=8000): the default host
    container = LabContainer(lecture_image, run_id, name("loopback")).publish(8000)
    container.with_kwargs(labels={RUN_LABEL: run_id}, entrypoint=["python3", "-c", default_run])
    container.start()
    try:
        probe = ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health')"]
        assert wait_until(lambda: container.exec(probe).exit_code == 0, timeout=60), "never served inside"
        with pytest.raises(requests.ConnectionError):
            requests.get(container.url(path="/health"), timeout=5)
    finally:
        container.remove()


def test_e6_the_get_only_route_answers_a_post_with_405():
    """E6: the slide's route accepts only GET; the lecture's client POSTs: 405 Method Not Allowed."""
    server = load("server.py")
    response = server.app.test_client().post("/predict", json=LECTURE_REQUEST)
    assert response.status_code == 405


def test_e7_numpy_integers_in_the_response_give_500():
    """E7: with POST allowed, `list(predictions)` holds numpy.int64, which JSON cannot encode: 500."""
    server = load("server.py", ("@app.route('/predict')", "@app.route('/predict', methods=['POST'])"))
    assert server.app.test_client().post("/predict", json=LECTURE_REQUEST).status_code == 500
    server.app.testing = True  # now Flask re-raises the error behind the 500
    with pytest.raises(TypeError, match="Object of type int64 is not JSON serializable"):
        server.app.test_client().post("/predict", json=LECTURE_REQUEST)


def test_e6_e7_both_fixes_give_the_lecture_result():
    """E6+E7: `methods=['POST']` and `predictions.tolist()`: 200 {"result": [0, 2]}."""
    server = load("server.py", ("@app.route('/predict')", "@app.route('/predict', methods=['POST'])"),
                  ("list(predictions)", "predictions.tolist()"))
    response = server.app.test_client().post("/predict", json=LECTURE_REQUEST)
    assert (response.status_code, response.get_json()) == (200, {"result": [0, 2]})


def test_e8_logistic_regression_does_not_converge_at_default_iterations():
    """E8: the slide's model warns ConvergenceWarning; with max_iter=1000 it converges (same predictions)."""
    from sklearn.exceptions import ConvergenceWarning

    with pytest.warns(ConvergenceWarning, match="lbfgs failed to converge"):
        as_written = load("server.py")
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        fixed = load("server.py", ("LogisticRegression(random_state=0)",
                                   "LogisticRegression(random_state=0, max_iter=1000)"))
    rows = LECTURE_REQUEST["data"]
    assert as_written.model.predict(rows).tolist() == fixed.model.predict(rows).tolist() == [0, 2]
    assert fixed.model.n_iter_[0] < 1000


# --- E9-E10: Compose --------------------------------------------------------------------------

def test_e9_the_unquoted_version_key_is_an_error_and_a_quoted_one_is_obsolete(tmp_path):
    """E9: compose v2 rejects `version: 3.7` (not a string), warns that `version` is obsolete, accepts the file without it."""
    as_written = compose_config(SNIPPETS / "docker-compose.yaml")
    assert as_written.returncode != 0 and "version must be a string" in as_written.stderr, as_written.stderr

    quoted = tmp_path / "quoted" / "docker-compose.yaml"
    quoted.parent.mkdir()
    quoted.write_text(snippet("docker-compose.yaml", ("version: 3.7", 'version: "3.7"')))
    result = compose_config(quoted)
    assert result.returncode == 0 and "obsolete" in result.stderr, result.stderr

    fixed = tmp_path / "fixed" / "docker-compose.yaml"
    fixed.parent.mkdir()
    fixed.write_text(snippet("docker-compose.yaml", ("version: 3.7\n", "")))
    result = compose_config(fixed)
    assert result.returncode == 0 and "obsolete" not in result.stderr, result.stderr


def compose_files() -> list[Path]:
    tops = [ROOT / "labs", ROOT / "solutions", ROOT / "exercises"]
    files = [p for top in tops for ext in ("yaml", "yml") for p in top.rglob(f"*.{ext}")]
    return files + [ROOT / "docker-compose.yaml"]


def test_e9_no_compose_file_of_the_course_has_a_version_key():
    """E9: none of the course's compose/stack files carries the obsolete `version:` key."""
    import yaml

    class ComposeLoader(yaml.SafeLoader):
        """Reads compose's own tags (!reset, !override) as plain values."""

    ComposeLoader.add_multi_constructor("!", lambda loader, suffix, node: None)
    offenders = []
    for path in compose_files():
        data = yaml.load(path.read_text(), Loader=ComposeLoader)
        if isinstance(data, dict) and "services" in data and "version" in data:
            offenders.append(str(path.relative_to(ROOT)))
    assert not offenders


# --- E11-E12: Swarm ---------------------------------------------------------------------------

def test_e11_the_misindented_deploy_key_is_an_unknown_service():
    """E11: `deploy:` at the services' level is read as a service named deploy and rejected."""
    result = compose_config(SNIPPETS / "docker-compose.production.misindented.yaml")
    assert result.returncode != 0
    assert re.search(r"services\.deploy additional propert(y|ies) .*(mode|replicas)", result.stderr), result.stderr
    assert compose_config(SNIPPETS / "docker-compose.production.yaml").returncode == 0


def test_e12_stack_deploy_without_a_stack_name_is_a_usage_error():
    """E12: `docker stack deploy --compose-file FILE` without the STACK argument is refused before anything runs."""
    file = str(SNIPPETS / "docker-compose.production.yaml")
    result = subprocess.run(["docker", "stack", "deploy", "--compose-file", file],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and re.search(r"requires (exactly )?1 argument", result.stderr), result.stderr

    # With a name the arguments are accepted. The file does not exist, so nothing can be deployed
    # even on a swarm manager: the CLI gets past its argument check and stops at the file.
    missing = "/nonexistent/docker-compose.production.yaml"
    result = subprocess.run(["docker", "stack", "deploy", "--compose-file", missing, "errata-iris"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "argument" not in result.stderr, result.stderr
    assert "no such file" in result.stderr or "swarm" in result.stderr, result.stderr


# --- E13-E16: Celery --------------------------------------------------------------------------

def test_e13_ready_fails_without_a_result_backend():
    """E13: the slide's app has no result backend: `.ready()` and `.get()` raise, even for a real task id."""
    tasks = load("tasks.py")
    result = tasks.predict.AsyncResult("3f6c1c1e-0000-4000-8000-000000000000")
    with pytest.raises(AttributeError, match="DisabledBackend"):
        result.ready()
    with pytest.raises(NotImplementedError, match="No result backend is configured"):
        result.get(timeout=1)


@pytest.fixture(scope="module")
def redis_url(name, run_id, docker_client):
    """A real Redis (redis:7) on a loopback port: redis://127.0.0.1:PORT."""
    from testcontainers.core.wait_strategies import LogMessageWaitStrategy

    container = LabContainer("redis:7", run_id, name("redis")).publish(6379)
    container.waiting_for(LogMessageWaitStrategy("Ready to accept connections").with_startup_timeout(30))
    container.start()
    yield f"redis://127.0.0.1:{container.get_exposed_port(6379)}"
    container.remove()


def test_e14_the_guest_broker_url_is_refused_by_redis(redis_url):
    """E14: `redis://guest@localhost//` logs in as user "guest", which Redis 6+ does not have; `redis://host:6379/0` works."""
    from kombu.exceptions import OperationalError

    port = redis_url.rsplit(":", 1)[1]
    tasks = load("tasks.py", ("redis://guest@localhost//", f"redis://guest@127.0.0.1:{port}//"))
    with pytest.raises(OperationalError, match="invalid username-password pair"):
        with tasks.app.connection() as connection:
            connection.ensure_connection(max_retries=1)
    fixed = load("tasks.py", ("redis://guest@localhost//", f"{redis_url}/0"))
    with fixed.app.connection() as connection:
        connection.ensure_connection(max_retries=1)


def test_e13_e15_with_a_backend_a_real_worker_returns_the_result_once_tolist_is_used(redis_url):
    """E13+E15: broker and backend fixed, a real worker runs the slide's task: list(predictions) fails to
    encode (EncodeError), predictions.tolist() gives {"result": [0, 2]} and .ready() is True."""
    from celery.contrib.testing.worker import start_worker

    configured = ("broker='redis://guest@localhost//')", f"broker='{redis_url}/0', backend='{redis_url}/1')")
    as_written = load("tasks.py", configured)
    fixed = load("tasks.py", configured, ("list(predictions)", "predictions.tolist()"))
    rows = LECTURE_REQUEST["data"]
    for module in (as_written, fixed):
        with start_worker(module.app, pool="solo", perform_ping_check=False, loglevel="ERROR",
                          shutdown_timeout=30):
            request = module.predict.delay(rows)
            if module is as_written:
                with pytest.raises(Exception, match="int64 is not JSON serializable") as error:
                    request.get(timeout=30)
                assert type(error.value).__name__ == "EncodeError" and request.state == "FAILURE"
            else:
                assert request.get(timeout=30) == {"result": [0, 2]} and request.ready()


def test_e16_the_periodic_task_needs_the_configure_hook_that_provides_sender():
    """E16: at module level `sender` does not exist; inside on_after_configure it schedules Mondays 7:30."""
    with pytest.raises(NameError, match="sender"):
        load("periodic.py")
    tasks = load("tasks.py", ("list(predictions)", "predictions.tolist()"))
    body = snippet("periodic.py").split("from celery.schedules import crontab\n")[1]
    hook = ("@app.on_after_configure.connect\n"
            "def setup_periodic_tasks(sender, **kwargs):\n"
            + "".join(f"    {line}\n" for line in body.strip().splitlines()))
    namespace = {**tasks.__dict__, "data": LECTURE_REQUEST["data"]}
    exec("from celery.schedules import crontab\n" + hook, namespace)
    [entry] = tasks.app.conf.beat_schedule.values()
    assert entry["task"].endswith(".predict") and entry["args"] == (LECTURE_REQUEST["data"],)
    schedule = entry["schedule"]
    assert (schedule.hour, schedule.minute, schedule.day_of_week) == ({7}, {30}, {1})


def test_every_erratum_in_the_errata_has_a_proof_here():
    """Each erratum of week/errata.md (E1, E2, ...) is proven by a test of this module, except the
    notes that say they are not tested."""
    text = (ROOT / "week" / "errata.md").read_text()
    numbers = sorted({int(n) for n in re.findall(r'<a id="e(\d+)"></a>', text)})
    assert numbers == list(range(1, len(numbers) + 1))
    untested = {int(n) for n in re.findall(r'<a id="e(\d+)"></a>\n### [^\n]*\n(?:(?!<a id=)[\s\S])*?'
                                           r"rather\s+than a tested erratum", text)}
    proven = {int(n) for name in globals() if name.startswith("test_e")
              for n in re.findall(r"(?<=_e)\d+", "_" + name[5:])}
    assert untested == {10}
    assert set(numbers) - untested <= proven, sorted(set(numbers) - untested - proven)
    for number in proven:
        assert f'<a id="e{number}"></a>' in text
