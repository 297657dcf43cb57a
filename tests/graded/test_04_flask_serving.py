"""Lab 04 — Flask serving: the student's service/app.py (create_app) and service/cache.py.

Unit tests import the target's `service` package and call create_app() through Flask's test client;
the rest run the built image next to real memcached:1.6 / redis:7 containers on a network of the run.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import random
import shutil
import subprocess
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from testcontainers.core.network import Network

from labkit.resources import RUN_LABEL
from labkit.testing import (Feedback, LabContainer, ServingWait, build_image, feedback, post_json,
                            wait_until)
from .flask_cases import BAD_INPUTS

pytestmark = pytest.mark.lab("04-flask-serving")

LECTURE_REQUEST = {"data": [[5.1, 3.5, 1.4, 0.2], [2.4, 0.1, 5.3, 4.2]]}
CACHE_IMAGES = {"memcached": ("memcached:1.6", 11211), "redis": ("redis:7", 6379)}
CACHE_URLS = {"memcached": "memcached://{host}:{port}", "redis": "redis://{host}:{port}/0"}


# ---------------------------------------------------------------- the student's package, in-process

def import_service(lab_dir: Path):
    """The target's service.app module, imported under a package name unique to the target folder,
    so that two targets (or a `service` package elsewhere on sys.path) never share sys.modules."""
    package = "labkit_target_" + hashlib.sha1(str(lab_dir.resolve()).encode()).hexdigest()[:12]
    if f"{package}.app" in sys.modules:
        return sys.modules[f"{package}.app"]
    init = lab_dir / "service" / "__init__.py"
    if not init.is_file():
        raise Feedback(f"expected a package service/ with __init__.py in {lab_dir.name}/; there is none")
    spec = importlib.util.spec_from_file_location(package, init, submodule_search_locations=[str(init.parent)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[package] = module
    try:
        spec.loader.exec_module(module)
        return importlib.import_module(f"{package}.app")
    except Exception as error:  # noqa: BLE001 - a syntax error in the student's code is feedback
        for name in [n for n in sys.modules if n == package or n.startswith(package + ".")]:
            del sys.modules[name]
        where = traceback.extract_tb(error.__traceback__)[-1]
        raise Feedback(f"expected service/app.py to import; it raised {type(error).__name__}: {error} "
                       f"({Path(where.filename).name}, line {where.lineno}). Keep the relative imports "
                       "(from .cache import ...).") from None


@pytest.fixture(scope="module")
def app_module(lab_dir):
    """The target's service.app module."""
    return import_service(lab_dir)


@pytest.fixture(scope="module")
def model_dir(lab_dir, tmp_path_factory):
    """A model artifact trained by the target's train.py on this machine."""
    out = tmp_path_factory.mktemp("model")
    done = subprocess.run([sys.executable, str(lab_dir / "train.py"), "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    if done.returncode:
        raise Feedback(f"expected train.py (given) to train the model; it failed: {done.stderr[-500:]}")
    return out


@pytest.fixture(scope="module")
def make_app(app_module, model_dir):
    """create_app(config) of the target, with the locally trained model unless config says otherwise."""
    def make(**config):
        settings = {"MODEL_DIR": str(model_dir), "CACHE_URL": "", **config}
        try:
            app = app_module.create_app(settings)
        except Exception as error:  # noqa: BLE001
            raise Feedback(f"expected create_app({settings}) to return the app; it raised "
                           f"{type(error).__name__}: {error}") from None
        app.testing = False  # errors become 500 answers, as in production, not exceptions in the test
        return app
    return make


@pytest.fixture(scope="module")
def client(make_app):
    """A Flask test client of the app without a cache."""
    return make_app().test_client()


def expected_predictions(model_dir: Path, rows) -> list[int]:
    import joblib  # the artifact of the given train.py; the same training as in the image
    return joblib.load(model_dir / "model.joblib").predict(rows).tolist()


def answer(response) -> str:
    """An HTTP answer, short, for feedback (works for requests' and Flask's responses)."""
    text = response.text if hasattr(response, "text") else response.get_data(as_text=True)
    cache = response.headers.get("X-Cache")
    return f"HTTP {response.status_code}{f' X-Cache: {cache}' if cache else ''} {text[:160]!r}"


def fresh_rows(count: int = 2) -> list[list[float]]:
    """Rows no earlier request of this run has sent (so the first lookup must miss)."""
    return [[round(random.uniform(4.3, 7.9), 6), round(random.uniform(2.0, 4.4), 6),
             round(random.uniform(1.0, 6.9), 6), round(random.uniform(0.1, 2.5), 6)] for _ in range(count)]


# ---------------------------------------------------------------- containers

@pytest.fixture(scope="module")
def image(docker_client, lab_dir, name, run_id):
    """The tag of the target's image, built from its Dockerfile (given)."""
    tag = name("image")
    build_image(docker_client, lab_dir, tag, run_id)
    return tag


@pytest.fixture(scope="module")
def network(name, run_id):
    """A Docker network of this run: the API containers reach the caches by name on it."""
    net = Network(docker_network_kw={"labels": {RUN_LABEL: run_id}})
    net.name = name("net")
    net.create()
    yield net
    try:
        net.remove()
    except Exception:  # noqa: BLE001 - the end-of-run clean-up removes it by its label
        pass


def start_cache(kind: str, network: Network, alias: str, run_id: str, container_name: str) -> LabContainer:
    """A real memcached or redis container on `network` as `alias`, published on loopback, ready."""
    image_name, port = CACHE_IMAGES[kind]
    container = LabContainer(image_name, run_id, container_name).publish(port)
    container.with_network(network).with_network_aliases(alias)
    container.start()
    host_port = int(container.get_exposed_port(port))

    def ready() -> bool:
        try:
            if kind == "redis":
                import redis
                return bool(redis.Redis(port=host_port, socket_timeout=1, socket_connect_timeout=1).ping())
            from pymemcache.client.base import Client
            return bool(Client(("127.0.0.1", host_port), connect_timeout=1, timeout=1).version())
        except Exception:  # noqa: BLE001 - not up yet
            return False

    if not wait_until(ready, timeout=20, interval=0.2):
        container.remove()
        raise Feedback(feedback(f"{image_name} to answer on its port", "no answer within 20 s (machine problem?)"))
    container.host_port = host_port
    return container


def start_api(image: str, network: Network, run_id: str, container_name: str, **env: str) -> LabContainer:
    """The student's image on `network`, serving on a loopback port."""
    container = LabContainer(image, run_id, container_name).publish(8000).with_network(network)
    for key, value in env.items():
        container.with_env(key, value)
    wait = ServingWait(8000, "/health").for_status_code_matching(lambda code: code < 500)
    container.waiting_for(wait.with_startup_timeout(45).with_poll_interval(0.5))
    try:
        container.start()
    except Exception:
        container.remove()
        raise
    return container


@pytest.fixture(scope="module")
def caches(network, name, run_id):
    """{'memcached': container, 'redis': container}, shared by the cache tests."""
    started = {}
    try:
        for kind in CACHE_IMAGES:
            started[kind] = start_cache(kind, network, kind, run_id, name(kind))
        yield started
    finally:
        for container in started.values():
            container.remove()


@pytest.fixture(scope="module")
def api_memcached(image, network, caches, name, run_id):
    """The student's container with CACHE_URL=memcached://memcached:11211."""
    container = start_api(image, network, run_id, name("api-mc"), CACHE_URL="memcached://memcached:11211")
    yield container
    container.remove()


@pytest.fixture(scope="module")
def api_redis(image, network, caches, name, run_id):
    """The student's container with CACHE_URL=redis://redis:6379/0."""
    container = start_api(image, network, run_id, name("api-redis"), CACHE_URL="redis://redis:6379/0")
    yield container
    container.remove()


def send(url: str, method: str, body, content_type: str | None, timeout: float = 10) -> requests.Response:
    headers = {"Content-Type": content_type} if content_type else {}
    data = body.encode() if isinstance(body, str) else body
    try:
        return requests.request(method, url, data=data, headers=headers, timeout=timeout)
    except requests.RequestException as error:
        raise Feedback(f"expected an HTTP answer from {url}; the request failed: {error}") from None


def post_raw(container: LabContainer, text: str) -> requests.Response:
    return send(container.url(path="/predict"), "POST", text, "application/json")


# ---------------------------------------------------------------- predictions

@pytest.mark.points(1)
def test_create_app_serves_the_lecture_request(client):
    """create_app() answers the lecture's request with {"result": [0, 2]} (Flask test client)."""
    response = client.post("/predict", json=LECTURE_REQUEST)
    assert response.status_code == 200 and response.get_json() == {"result": [0, 2]}, feedback(
        'HTTP 200 {"result": [0, 2]} for the lecture\'s request', answer(response))


@pytest.mark.points(2)
def test_the_container_serves_correct_predictions(api_memcached, model_dir):
    """The image serves [0, 2] for the lecture's request and the model's predictions for all 150 iris rows."""
    from sklearn.datasets import load_iris

    container = api_memcached.get_wrapped_container()
    response = post_json(api_memcached.url(path="/predict"), LECTURE_REQUEST)
    assert response.status_code == 200 and response.json().get("result") == [0, 2], feedback(
        'HTTP 200 {"result": [0, 2]} for the lecture\'s request', answer(response), container)
    rows = load_iris().data.tolist()
    response = post_json(api_memcached.url(path="/predict"), {"data": rows})
    got = response.json().get("result") if response.status_code == 200 else None
    assert got == expected_predictions(model_dir, rows), feedback(
        "the model's 150 predictions for the iris rows, in order", answer(response), container)


# ---------------------------------------------------------------- validation

@pytest.mark.points(3)
def test_bad_inputs_get_the_documented_4xx_and_a_json_error(client):
    """Each of 25 bad requests gets its documented 4xx with a JSON {"error": "..."} (Flask test client)."""
    wrong = []
    for what, method, path, body, content_type, status in BAD_INPUTS:
        response = client.open(path, method=method, data=body, content_type=content_type)
        payload = response.get_json(silent=True)
        if response.status_code != status or not (isinstance(payload, dict) and isinstance(payload.get("error"), str)):
            wrong.append(f"{what}: expected HTTP {status} with {{\"error\": ...}}, got {answer(response)}")
    assert not wrong, feedback(f"the documented 4xx and a JSON error for all {len(BAD_INPUTS)} bad inputs",
                               f"{len(wrong)} wrong:\n    " + "\n    ".join(wrong))


@pytest.mark.points(1)
def test_the_container_keeps_serving_after_the_bad_inputs(api_memcached):
    """After all the bad requests the container never answered 5xx and still predicts [0, 2]."""
    container = api_memcached.get_wrapped_container()
    server_errors = []
    for what, method, path, body, content_type, _ in BAD_INPUTS:
        response = send(api_memcached.url(path=path), method, body, content_type)
        if response.status_code >= 500:
            server_errors.append(f"{what}: {answer(response)}")
    response = post_json(api_memcached.url(path="/predict"), LECTURE_REQUEST)
    assert not server_errors, feedback("no 5xx for bad input", "\n    " + "\n    ".join(server_errors), container)
    assert response.status_code == 200 and response.json().get("result") == [0, 2], feedback(
        "the lecture's request still answered [0, 2] after the bad inputs", answer(response), container)


@pytest.mark.points(2)
def test_a_body_over_1_mib_and_too_many_rows_get_413(make_app, client):
    """A body over 1 MiB and a request of more than MAX_ROWS rows get 413 with a JSON error."""
    row = [5.1, 3.5, 1.4, 0.2]
    big = json.dumps({"data": [row] * 60_000})  # ~1.2 MiB
    checks = [("a 1.2 MiB body", client.post("/predict", data=big, content_type="application/json"), 413),
              ("1000 rows (the default MAX_ROWS)", client.post("/predict", json={"data": [row] * 1000}), 200),
              ("1001 rows (the default MAX_ROWS is 1000)", client.post("/predict", json={"data": [row] * 1001}), 413)]
    small = make_app(MAX_ROWS=3).test_client()
    checks += [("3 rows with MAX_ROWS=3", small.post("/predict", json={"data": [row] * 3}), 200),
               ("4 rows with MAX_ROWS=3", small.post("/predict", json={"data": [row] * 4}), 413)]
    wrong = []
    for what, response, status in checks:
        payload = response.get_json(silent=True)
        json_ok = status == 200 or (isinstance(payload, dict) and "error" in payload)
        if response.status_code != status or not json_ok:
            wrong.append(f"{what}: expected HTTP {status}{'' if status == 200 else ' with a JSON error'}, "
                         f"got {answer(response)}")
    assert not wrong, feedback("413 for too much, 200 up to the limits", "\n    " + "\n    ".join(wrong))


# ---------------------------------------------------------------- caching

def check_hit_and_miss(api: LabContainer, kind: str) -> None:
    container = api.get_wrapped_container()
    rows = fresh_rows()
    compact = json.dumps({"data": rows, "client": "grader"}, separators=(",", ":"))
    spaced = json.dumps({"client": "grader", "data": rows}, indent=4)
    steps = [("a new request", compact, "MISS"),
             ("the same data again, other spacing and key order", spaced, "HIT"),
             ("other data", json.dumps({"data": fresh_rows()}), "MISS")]
    results = []
    for what, text, expected in steps:
        response = post_raw(api, text)
        cache = response.headers.get("X-Cache")
        if response.status_code != 200 or cache != expected:
            raise Feedback(feedback(f"HTTP 200 with X-Cache: {expected} for {what} ({kind} cache)",
                                    answer(response), container))
        results.append(response.json().get("result"))
    assert results[0] == results[1], feedback("the cached answer to equal the computed one",
                                              f"{results[0]} then {results[1]}")


@pytest.mark.points(3)
def test_identical_requests_hit_the_memcached_cache(api_memcached):
    """With CACHE_URL=memcached://...: the same data (any spacing, key order) is X-Cache: HIT, new data MISS."""
    check_hit_and_miss(api_memcached, "memcached")


@pytest.mark.points(2)
def test_identical_requests_hit_the_redis_cache(api_redis):
    """With CACHE_URL=redis://...: the same data (any spacing, key order) is X-Cache: HIT, new data MISS."""
    check_hit_and_miss(api_redis, "redis")


@pytest.mark.points(2)
def test_the_cache_key_includes_the_model_version(make_app, model_dir, caches, tmp_path):
    """A model of another version never gets the old model's cached answers (the key holds the version)."""
    retrained = tmp_path / "retrained"
    shutil.copytree(model_dir, retrained)
    meta = json.loads((retrained / "model.json").read_text())
    meta["version"] += "-retrained"
    (retrained / "model.json").write_text(json.dumps(meta))
    url = CACHE_URLS["redis"].format(host="127.0.0.1", port=caches["redis"].host_port)
    old = make_app(CACHE_URL=url).test_client()
    new = make_app(CACHE_URL=url, MODEL_DIR=str(retrained)).test_client()
    request = {"data": fresh_rows()}
    steps = [("the old model, a new request", old, "MISS"), ("the old model, again", old, "HIT"),
             ("the new model version, the same request", new, "MISS"), ("the new model, again", new, "HIT")]
    for what, client, expected in steps:
        response = client.post("/predict", json=request)
        assert response.status_code == 200 and response.headers.get("X-Cache") == expected, feedback(
            f"X-Cache: {expected} for {what} (both apps share one redis)", answer(response)
            + ("; put the model version (model.version) into cache_key" if "new model version" in what else ""))


@pytest.mark.points(2)
def test_cache_ttl_expires_entries(make_app, caches):
    """With CACHE_TTL=1 a cached prediction is a HIT at once and a MISS again within a few seconds."""
    url = CACHE_URLS["memcached"].format(host="127.0.0.1", port=caches["memcached"].host_port)
    client = make_app(CACHE_URL=url, CACHE_TTL=1).test_client()
    request = {"data": fresh_rows()}
    for expected in ("MISS", "HIT"):
        response = client.post("/predict", json=request)
        assert response.headers.get("X-Cache") == expected, feedback(
            f"X-Cache: {expected} ({'first' if expected == 'MISS' else 'second'} request, CACHE_TTL=1)", answer(response))
    started = time.monotonic()
    expired = wait_until(lambda: client.post("/predict", json=request).headers.get("X-Cache") == "MISS",
                         timeout=5, interval=0.25)
    assert expired, feedback("X-Cache: MISS again within 5 s with CACHE_TTL=1",
                             f"still a HIT after {time.monotonic() - started:.1f} s: store with expire/ex=CACHE_TTL")


@pytest.mark.points(2)
@pytest.mark.parametrize("kind", ["memcached", "redis"])
def test_a_down_cache_is_bypassed_quickly(kind, image, network, name, run_id):
    """With the cache server hung (paused) or gone (stopped), every request is 200, X-Cache: BYPASS, < 0.5 s."""
    cache = start_cache(kind, network, f"{kind}-down", run_id, name(kind, "down"))
    api = None
    try:
        _, port = CACHE_IMAGES[kind]
        api = start_api(image, network, run_id, name("api", kind, "down"),
                        CACHE_URL=CACHE_URLS[kind].format(host=f"{kind}-down", port=port))
        container = api.get_wrapped_container()
        rows = fresh_rows()
        for expected in ("MISS", "HIT"):  # the cache works before it goes away
            response = post_json(api.url(path="/predict"), {"data": rows})
            if response.headers.get("X-Cache") != expected:
                raise Feedback(feedback(f"X-Cache: {expected} while {kind} is up", answer(response), container))
        for state, act in (("hung (paused)", lambda c: c.pause()), ("gone (stopped)", lambda c: (c.unpause(), c.kill()))):
            act(cache.get_wrapped_container())
            for attempt, data in enumerate([rows, fresh_rows(), rows, fresh_rows(1)]):
                started = time.monotonic()
                try:
                    response = requests.post(api.url(path="/predict"), json={"data": data}, timeout=5)
                except requests.RequestException as error:
                    raise Feedback(feedback(f"an answer with {kind} {state}", f"no answer within 5 s ({error}); "
                                            "set short socket timeouts and no retries", container)) from None
                took = time.monotonic() - started
                ok = response.status_code == 200 and response.headers.get("X-Cache") == "BYPASS"
                assert ok and took < 0.5, feedback(
                    f"HTTP 200 with X-Cache: BYPASS in < 0.5 s with {kind} {state} (request {attempt + 1})",
                    f"{answer(response)} after {took:.2f} s", container)
    finally:
        if api is not None:
            api.remove()
        try:
            cache.get_wrapped_container().unpause()
        except Exception:  # noqa: BLE001 - not paused
            pass
        cache.remove()


# ---------------------------------------------------------------- concurrency

@pytest.mark.points(2)
def test_50_concurrent_requests_all_succeed(api_memcached, model_dir):
    """50 requests sent at the same moment all get HTTP 200 with the right predictions."""
    batches = [fresh_rows(random.randint(1, 20)) for _ in range(50)]
    start = threading.Barrier(50, timeout=15)
    url = api_memcached.url(path="/predict")

    def one(rows):
        start.wait()
        try:
            response = requests.post(url, json={"data": rows}, timeout=20)
            return response.status_code, response.json().get("result") if response.status_code == 200 else response.text[:100]
        except (requests.RequestException, ValueError) as error:
            return None, repr(error)[:100]

    with ThreadPoolExecutor(max_workers=50) as pool:
        answers = list(pool.map(one, batches))
    wrong = [f"request {n}: HTTP {status} {got}" for n, ((status, got), rows) in enumerate(zip(answers, batches))
             if status != 200 or got != expected_predictions(model_dir, rows)]
    assert not wrong, feedback("50 x HTTP 200 with the model's predictions", f"{len(wrong)} failed: " +
                               "; ".join(wrong[:5]), api_memcached.get_wrapped_container())
