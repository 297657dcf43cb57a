"""Lab 04 — Flask serving: the student's service/app.py (create_app) and service/cache.py.

Nothing of the submission runs in the grader's process or on the host: every check talks HTTP to
containers of the image built from the graded tree (the course's Dockerfile, train.py and
model.py, the student's app.py and cache.py), next to real memcached:1.6 / redis:7 containers on a
network of the run. Settings a check needs (MAX_ROWS, CACHE_TTL, CACHE_URL) go in as environment
variables, as in production. Expected predictions come from the course's reference model
(tests/fixtures/04-flask-serving/expected_predictions.json: the 150 iris rows and ~1,000 varied
rows), never from the submission.
"""
from __future__ import annotations

import json
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from docker.errors import DockerException
from testcontainers.core.network import Network

from labkit.resources import RUN_LABEL
from labkit.testing import (Feedback, LabContainer, ServingWait, build_image, feedback, post_json, request,
                            wait_until)
from .flask_cases import BAD_INPUTS

pytestmark = pytest.mark.lab("04-flask-serving")

# The thresholds of the requirements (they appear in the requirement texts below).
BYPASS_SECONDS = 0.5        # a down cache may cost at most this per request (the fastest of a state's requests)
BYPASS_HARD_SECONDS = 2.0   # ... and no request this much: a hang or a timeout of seconds always exceeds it
TTL_SECONDS = 2             # the CACHE_TTL a check configures (memcached counts whole seconds) ...
TTL_EXPIRY_SECONDS = 6      # ... and the entry is gone (MISS again) within this
START_SECONDS = 60          # a container answers GET /health within this (a loaded machine is slow)
SMALL_MAX_ROWS = 3          # the MAX_ROWS a check configures
CONCURRENT_REQUESTS = 50
# CACHE_TIMEOUT for the checks of a working cache: on a loaded machine a healthy redis can take more
# than the default 0.1 s, which a correct service rightly treats as BYPASS. The bypass check keeps 0.1 s.
SLOW_CACHE_TIMEOUT = "1"
CACHE_BATCH_SIZES = (1, 3, 12, 40)  # rows per request in the cache checks: tiny to realistic

LECTURE_REQUEST = {"data": [[5.1, 3.5, 1.4, 0.2], [2.4, 0.1, 5.3, 4.2]]}
EXPECTED = json.loads((Path(__file__).resolve().parent.parent / "fixtures" / "04-flask-serving"
                       / "expected_predictions.json").read_text())
CACHE_IMAGES = {"memcached": ("memcached:1.6", 11211), "redis": ("redis:7", 6379)}
CACHE_URLS = {"memcached": "memcached://{host}:{port}", "redis": "redis://{host}:{port}/0"}
BACKENDS = list(CACHE_IMAGES)
# Another model version of the same image: the course's model with another version id in model.json.
RETRAINED_DOCKERFILE = """FROM {image}
USER root
RUN python -c "import json, pathlib; p = pathlib.Path('/app/model/model.json'); m = json.loads(p.read_text()); \\
m['version'] += '-retrained'; p.write_text(json.dumps(m))"
USER app
"""


class RowPool:
    """Rows with known answers, each handed out once per run, so a first lookup must miss."""

    def __init__(self) -> None:
        self.answers = {tuple(row): result for row, result in zip(EXPECTED["rows"], EXPECTED["result"])}
        self.unused = list(EXPECTED["rows"])
        random.shuffle(self.unused)

    def take(self, count: int) -> list:
        if len(self.unused) >= count:
            return [self.unused.pop() for _ in range(count)]
        # Used up: a random sequence of known rows is still new (the key is of the whole sequence).
        return random.sample(EXPECTED["rows"], max(count, 5))

    def expected(self, rows) -> list[int]:
        return [self.answers[tuple(row)] for row in rows]


POOL = RowPool()


def answer(response) -> str:
    """An HTTP answer, short, for feedback."""
    cache = response.headers.get("X-Cache")
    return f"HTTP {response.status_code}{f' X-Cache: {cache}' if cache else ''} {response.text[:160]!r}"


def result_of(response):
    try:
        return response.json().get("result") if response.status_code == 200 else None
    except (ValueError, AttributeError):
        return None


# ---------------------------------------------------------------- containers

@pytest.fixture(scope="module")
def image(docker_client, lab_dir, name, run_id):
    """The tag of the image built from the graded tree (the course's Dockerfile)."""
    tag = name("image")
    build_image(docker_client, lab_dir, tag, run_id)
    return tag


@pytest.fixture(scope="module")
def retrained_image(image, docker_client, name, run_id, tmp_path_factory):
    """The same image with a model of another version (model.json's version changed)."""
    context = tmp_path_factory.mktemp("retrained")
    (context / "Dockerfile").write_text(RETRAINED_DOCKERFILE.format(image=image))
    tag = name("image-retrained")
    build_image(docker_client, context, tag, run_id)
    yield tag
    # With its untagged parents: they inherit the run's label from the student's image, and would
    # be left behind as labelled dangling images.
    try:
        docker_client.images.remove(tag, force=True)
    except DockerException:
        pass


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
    return container


NEVER_SERVED: dict[str, Feedback] = {}  # image -> why it did not serve with the defaults: fail at once


def start_api(image: str, network: Network, run_id: str, container_name: str, **env: str) -> LabContainer:
    """The student's image on `network`, serving on a loopback port."""
    if image in NEVER_SERVED:
        raise NEVER_SERVED[image]
    container = LabContainer(image, run_id, container_name).publish(8000).with_network(network)
    for key, value in env.items():
        container.with_env(key, value)
    wait = ServingWait(8000, "/health").for_status_code_matching(lambda code: code < 500)
    container.waiting_for(wait.with_startup_timeout(START_SECONDS).with_poll_interval(0.5))
    try:
        container.start()
    except Feedback as failure:
        container.remove()
        if not env and "no answer" in str(failure):  # runs, never answers, even with the defaults:
            NEVER_SERVED[image] = failure                # waiting again would only repeat that
        raise
    except Exception:
        container.remove()
        raise
    return container


def address_on(container: LabContainer, network: Network) -> str:
    """The container's IP address on `network`."""
    wrapped = container.get_wrapped_container()
    wrapped.reload()
    return wrapped.attrs["NetworkSettings"]["Networks"][network.name]["IPAddress"]


def cache_url(kind: str, host: str | None = None) -> str:
    return CACHE_URLS[kind].format(host=host or kind, port=CACHE_IMAGES[kind][1])


@pytest.fixture(scope="module")
def caches(network, name, run_id):
    """{'memcached': container, 'redis': container}, shared by the cache tests."""
    started = {}
    try:
        for kind in BACKENDS:
            started[kind] = start_cache(kind, network, kind, run_id, name(kind))
        yield started
    finally:
        for container in started.values():
            container.remove()


@pytest.fixture(scope="module")
def api_plain(image, network, name, run_id):
    """The student's container without a cache (CACHE_URL empty, the default)."""
    container = start_api(image, network, run_id, name("api-plain"))
    yield container
    container.remove()


@pytest.fixture(scope="module")
def api_cached(image, network, caches, name, run_id):
    """{'memcached': container, 'redis': container}: the student's image with CACHE_URL of each."""
    started = {}
    try:
        for kind in BACKENDS:
            started[kind] = start_api(image, network, run_id, name("api", kind), CACHE_URL=cache_url(kind),
                                      CACHE_TIMEOUT=SLOW_CACHE_TIMEOUT)
        yield started
    finally:
        for container in started.values():
            container.remove()


@pytest.fixture
def started(network, run_id, name):
    """Starts more API containers for one test (start(image, label, **env)); removes them after it."""
    containers = []

    def start(image: str, label: str, **env: str) -> LabContainer:
        # One gunicorn worker (the given gunicorn.conf.py reads WEB_CONCURRENCY): these check one setting.
        env = {"WEB_CONCURRENCY": "1", **env}
        containers.append(start_api(image, network, run_id, name("api", label), **env))
        return containers[-1]
    yield start
    for container in containers:
        container.remove()


def post_raw(container: LabContainer, text: str):
    return request("POST", container.url(path="/predict"), data=text.encode(),
                   headers={"Content-Type": "application/json"})


# ---------------------------------------------------------------- predictions

@pytest.mark.points(1)
def test_the_service_answers_the_lecture_request(api_plain):
    """POST /predict answers the lecture's request with [0, 2].

    True for a correct submission: the container (no cache) answers HTTP 200 {"result": [0, 2]}."""
    response = post_json(api_plain.url(path="/predict"), LECTURE_REQUEST)
    assert response.status_code == 200 and response.json() == {"result": [0, 2]}, feedback(
        'HTTP 200 {"result": [0, 2]} for the lecture\'s request', answer(response), api_plain.get_wrapped_container())


@pytest.mark.points(3)
def test_the_container_serves_correct_predictions(api_plain):
    """Predictions match the reference model's on 150 iris rows and ~1,000 varied rows.

    True for a correct submission: every row (floats and integers, inside and beyond the iris
    ranges), sent in batches of 1 to 500 rows, gets the class the course's model gives it, in order."""
    rows, wanted = EXPECTED["rows"], EXPECTED["result"]
    container = api_plain.get_wrapped_container()
    start = 0
    for size in (1, 7, 142, 500, 500):
        batch = rows[start:start + size]
        response = post_json(api_plain.url(path="/predict"), {"data": batch})
        got = result_of(response)
        if got != wanted[start:start + size]:
            wrong = [i for i, (g, w) in enumerate(zip(got or [], wanted[start:start + size])) if g != w]
            where = f"rows {wrong[:5]} wrong, e.g. {batch[wrong[0]]}" if wrong else answer(response)
            raise Feedback(feedback(f"the model's {len(batch)} predictions for a batch of {len(batch)} rows, "
                                    "in order", where, container))
        start += size


# ---------------------------------------------------------------- validation

@pytest.mark.points(3)
def test_bad_inputs_get_the_documented_4xx_and_a_json_error(api_plain):
    """25 bad requests get their documented 4xx and a JSON error.

    True for a correct submission: the status of the README's table (400, 404, 405, 415) and a JSON
    object whose "error" is a string, for each request of tests/graded/flask_cases.py."""
    wrong = []
    for what, method, path, body, content_type, status in BAD_INPUTS:
        response = send(api_plain, method, path, body, content_type)
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if response.status_code != status or not (isinstance(payload, dict) and isinstance(payload.get("error"), str)):
            wrong.append(f"{what}: expected HTTP {status} with {{\"error\": ...}}, got {answer(response)}")
    assert not wrong, feedback(f"the documented 4xx and a JSON error for all {len(BAD_INPUTS)} bad inputs",
                               f"{len(wrong)} wrong:\n    " + "\n    ".join(wrong))


def send(container: LabContainer, method: str, path: str, body, content_type: str | None):
    headers = {"Content-Type": content_type} if content_type else {}
    data = body.encode() if isinstance(body, str) else body
    return request(method, container.url(path=path), data=data, headers=headers)


@pytest.mark.points(1)
def test_the_container_keeps_serving_after_the_bad_inputs(api_plain):
    """No bad request gives a 5xx or stops the server.

    True for a correct submission: no bad input gives a 5xx, and afterwards the lecture's request
    gets the same 200 answer as before them."""
    container = api_plain.get_wrapped_container()
    before = post_json(api_plain.url(path="/predict"), LECTURE_REQUEST)
    server_errors = []
    for what, method, path, body, content_type, _ in BAD_INPUTS:
        response = send(api_plain, method, path, body, content_type)
        if response.status_code >= 500:
            server_errors.append(f"{what}: {answer(response)}")
    response = post_json(api_plain.url(path="/predict"), LECTURE_REQUEST)
    assert not server_errors, feedback("no 5xx for bad input", "\n    " + "\n    ".join(server_errors), container)
    assert response.status_code == 200 and response.text == before.text, feedback(
        f"the lecture's request still answered as before the bad inputs ({answer(before)})", answer(response),
        container)


@pytest.mark.points(2)
def test_a_body_over_1_mib_and_too_many_rows_get_413(api_plain, image, started):
    """413 for a body over 1 MiB and for more than MAX_ROWS rows.

    True for a correct submission: 413 for a 1.2 MiB body and for 1001 rows (default MAX_ROWS 1000),
    200 for 1000 rows; started with MAX_ROWS=3, 200 for 3 rows and 413 for 4."""
    row = [5.1, 3.5, 1.4, 0.2]
    url = api_plain.url(path="/predict")
    small = started(image, "max-rows", MAX_ROWS=str(SMALL_MAX_ROWS))
    checks = [("a 1.2 MiB body", lambda: post_raw(api_plain, json.dumps({"data": [row] * 60_000})), 413),
              ("1000 rows (the default MAX_ROWS)", lambda: post_json(url, {"data": [row] * 1000}), 200),
              ("1001 rows (the default MAX_ROWS is 1000)", lambda: post_json(url, {"data": [row] * 1001}), 413),
              (f"{SMALL_MAX_ROWS} rows with MAX_ROWS={SMALL_MAX_ROWS}",
               lambda: post_json(small.url(path="/predict"), {"data": [row] * SMALL_MAX_ROWS}), 200),
              (f"{SMALL_MAX_ROWS + 1} rows with MAX_ROWS={SMALL_MAX_ROWS}",
               lambda: post_json(small.url(path="/predict"), {"data": [row] * (SMALL_MAX_ROWS + 1)}), 413)]
    wrong = []
    for what, send_it, status in checks:
        response = send_it()
        try:
            json_ok = status == 200 or isinstance(response.json().get("error"), str)
        except (ValueError, AttributeError):
            json_ok = False
        if response.status_code != status or not json_ok:
            wrong.append(f"{what}: expected HTTP {status}{'' if status == 200 else ' with a JSON error'}, "
                         f"got {answer(response)}")
    assert not wrong, feedback("413 for too much, 200 up to the limits", "\n    " + "\n    ".join(wrong))


# ---------------------------------------------------------------- caching

def expect(api: LabContainer, text: str, wanted: str | None, what: str, result: list | None = None) -> list:
    """POST `text`; the answer must be 200 with a result, that X-Cache (None: any) and, when given,
    that result (the cache checks compare answers with each other: the predictions requirement
    checks them against the reference). Returns the result."""
    response = post_raw(api, text)
    got = result_of(response)
    if (response.status_code != 200 or not isinstance(got, list) or (wanted and response.headers.get("X-Cache") != wanted)
            or (result is not None and got != result)):
        same = " and the same result as the first answer" if result is not None else ""
        raise Feedback(feedback(f"HTTP 200{f' with X-Cache: {wanted}' if wanted else ''}{same} for {what}",
                                answer(response), api.get_wrapped_container()))
    return got


# A MISS stores its answer, but the store may not be readable yet when the next request asks:
# pymemcache's set() does not wait for memcached's reply (default_noreply=True, also the reference's),
# and the next request may reach another gunicorn worker, on another connection. On a loaded machine
# that lost a HIT once in a corpus run. So the first repeat of a request is asked up to HIT_TRIES times,
# HIT_RETRY_SECONDS apart; the checks that follow it (other spacing, key order) get one try each.
HIT_TRIES = 3
HIT_RETRY_SECONDS = 0.2


def expect_hit(api: LabContainer, text: str, what: str, result: list | None = None) -> list:
    """expect(api, text, "HIT", ...) for the first repeat after a MISS, with HIT_TRIES tries."""
    for _ in range(HIT_TRIES - 1):
        try:
            return expect(api, text, "HIT", what, result)
        except Feedback:
            time.sleep(HIT_RETRY_SECONDS)
    return expect(api, text, "HIT", what, result)  # the last try's feedback is the student's


def compact(rows) -> str:
    return json.dumps({"data": rows, "client": "grader"}, separators=(",", ":"))


def spaced(rows) -> str:
    return json.dumps({"client": "grader", "data": rows}, indent=4)


@pytest.mark.points(2)
@pytest.mark.parametrize("kind", BACKENDS)
def test_identical_requests_hit_the_cache(kind, api_cached):
    """The same data is a cache HIT (any spacing, key order), new data a MISS.

    True for a correct submission, on memcached and on redis alike, for requests of 1 to 40 rows:
    the first request of new rows is a MISS, the same rows again are a HIT with the same predictions
    (at once, or within HIT_TRIES tries: the MISS's store may still be on its way), so are they with
    other JSON spacing and key order, and rows with one value changed are a MISS."""
    api = api_cached[kind]
    for size in CACHE_BATCH_SIZES:
        rows = POOL.take(size)
        label = f"{size} new row(s), {kind} cache"
        first = expect(api, compact(rows), "MISS", f"a first request of {label}")
        expect_hit(api, compact(rows), f"the same {label} again", first)
        expect(api, spaced(rows), "HIT", f"the same {label}, other spacing and key order", first)
    changed = [row[:] for row in rows]
    changed[-1] = POOL.take(1)[0]
    expect(api, compact(changed), "MISS", f"the same rows with the last one changed ({kind} cache)")
    expect(api, compact(rows[::-1]), None, f"the same rows in reverse order ({kind} cache)", first[::-1])


@pytest.mark.points(1)
@pytest.mark.parametrize("kind", BACKENDS)
def test_the_cache_key_includes_the_model_version(kind, api_cached, retrained_image, started):
    """Another model version never gets the old version's cached answers.

    True for a correct submission, on memcached and on redis alike: two containers share one
    cache server, one with another model
    version (model.json); the same new request is a MISS on each the first time, then a HIT."""
    old = api_cached[kind]
    new = started(retrained_image, f"retrained-{kind}", CACHE_URL=cache_url(kind), CACHE_TIMEOUT=SLOW_CACHE_TIMEOUT)
    rows = POOL.take(5)
    steps = [("the old model, a new request", old, "MISS"), ("the old model, again", old, "HIT"),
             ("the new model version, the same request", new, "MISS"), ("the new model, again", new, "HIT")]
    for what, api, wanted in steps:
        what = f"{what} (both containers share one {kind})"
        if wanted == "HIT":
            expect_hit(api, compact(rows), what)
            continue
        response = post_raw(api, compact(rows))
        hint = "; put the model version (model.version) into cache_key" if "new model version" in what else ""
        assert response.status_code == 200 and response.headers.get("X-Cache") == wanted, feedback(
            f"X-Cache: {wanted} for {what}", answer(response) + hint)


@pytest.mark.points(1)
@pytest.mark.parametrize("kind", BACKENDS)
def test_cache_ttl_expires_entries(kind, image, caches, started):
    """With CACHE_TTL=2 a cached entry is a HIT at once and a MISS again within 6 s.

    True for a correct submission, on memcached and on redis alike: entries are stored with the
    expiry CACHE_TTL says (TTL_SECONDS; gone within TTL_EXPIRY_SECONDS). Memcached counts whole
    seconds, so a HIT right after the MISS gets three tries with new rows."""
    api = started(image, f"ttl-{kind}", CACHE_URL=cache_url(kind), CACHE_TTL=str(TTL_SECONDS),
                  CACHE_TIMEOUT=SLOW_CACHE_TIMEOUT)
    for _ in range(3):
        rows = POOL.take(4)
        expect(api, compact(rows), "MISS", f"a first request ({kind}, CACHE_TTL={TTL_SECONDS})")
        response = post_raw(api, compact(rows))
        if response.headers.get("X-Cache") == "HIT":
            break
    else:
        raise Feedback(feedback(f"X-Cache: HIT for a request repeated at once ({kind}, CACHE_TTL={TTL_SECONDS})",
                                answer(response), api.get_wrapped_container()))
    began = time.monotonic()
    expired = wait_until(lambda: post_raw(api, compact(rows)).headers.get("X-Cache") == "MISS",
                         timeout=TTL_EXPIRY_SECONDS, interval=0.25)
    assert expired, feedback(f"X-Cache: MISS again within {TTL_EXPIRY_SECONDS} s with CACHE_TTL={TTL_SECONDS} "
                             f"({kind})", f"still a HIT after {time.monotonic() - began:.1f} s: store with an "
                             "expiry of CACHE_TTL")


@pytest.mark.points(2)
@pytest.mark.parametrize("kind", BACKENDS)
def test_a_down_cache_is_bypassed_quickly(kind, image, network, name, run_id, started):
    """A hung or stopped cache is bypassed: 200, X-Cache: BYPASS, < 0.5 s.

    True for a correct submission, on memcached and on redis alike: with the cache server paused,
    then stopped, each request answers 200 with X-Cache: BYPASS and a prediction per row (the same
    as before for the same rows) in less than BYPASS_SECONDS (short socket timeouts, no retries).

    The time is the configuration's, not the machine's: of a state's four requests the fastest must
    take < BYPASS_SECONDS and none BYPASS_HARD_SECONDS. A correct client (0.1 s timeouts) needs ~0.15 s,
    but on a loaded 2-core machine (load average 15) one request in a few took 0.75 s; a missing or
    multi-second timeout, or redis-py's default retries, make every request slow, the fastest too."""
    cache = start_cache(kind, network, f"{kind}-down", run_id, name(kind, "down"))
    try:
        # The cache by its address, not its name: a stopped container's name leaves Docker's DNS, and how
        # fast "no such name" comes back is the machine's resolver (seen: one lookup in ~10 took 5 s, a
        # resolver retry, on a loaded machine). By address, "gone" is a dead peer: the client's connect
        # timeout is what answers, which is what this requirement is about.
        api = started(image, f"{kind}-down", CACHE_URL=cache_url(kind, host=address_on(cache, network)))
        container = api.get_wrapped_container()
        rows = POOL.take(3)
        # The cache works before it goes away.
        first = expect(api, compact(rows), "MISS", f"a request while {kind} is up")
        expect_hit(api, compact(rows), f"the same request again while {kind} is up", first)
        for state, act in (("hung (paused)", lambda c: c.pause()), ("gone (stopped)", lambda c: (c.unpause(), c.kill()))):
            act(cache.get_wrapped_container())
            wanted = f"HTTP 200 with X-Cache: BYPASS and a prediction per row with {kind} {state}"
            times = []
            for attempt, data in enumerate([rows, POOL.take(2), rows, POOL.take(1)]):
                began = time.monotonic()
                response = request("POST", api.url(path="/predict"), timeout=5, json={"data": data})
                times.append(time.monotonic() - began)
                got = result_of(response)
                ok = (response.status_code == 200 and response.headers.get("X-Cache") == "BYPASS"
                      and isinstance(got, list) and len(got) == len(data) and (data is not rows or got == first))
                assert ok and times[-1] < BYPASS_HARD_SECONDS, feedback(
                    f"{wanted}, each in < {BYPASS_HARD_SECONDS} s (request {attempt + 1})",
                    f"{answer(response)} after {times[-1]:.2f} s", container)
            assert min(times) < BYPASS_SECONDS, feedback(
                f"{wanted} in < {BYPASS_SECONDS} s (the fastest of {len(times)}): short socket timeouts, no retries",
                f"the fastest took {min(times):.2f} s (all: {', '.join(f'{t:.2f}' for t in times)})", container)
    finally:
        try:
            cache.get_wrapped_container().unpause()
        except Exception:  # noqa: BLE001 - not paused
            pass
        cache.remove()


# ---------------------------------------------------------------- concurrency

@pytest.mark.points(2)
def test_50_concurrent_requests_all_succeed(api_cached):
    """50 simultaneous requests all get 200 with the right predictions.

    True for a correct submission: with a cache (memcached), 50 simultaneous requests of 1 to 10
    new rows each all answer 200 with the reference model's predictions."""
    api = api_cached["memcached"]
    batches = [POOL.take(random.randint(1, 10)) for _ in range(CONCURRENT_REQUESTS)]
    barrier = threading.Barrier(CONCURRENT_REQUESTS, timeout=15)
    url = api.url(path="/predict")

    def one(rows):
        barrier.wait()
        try:
            response = request("POST", url, timeout=20, json={"data": rows})
            return response.status_code, result_of(response) if response.status_code == 200 else response.text[:100]
        except Feedback as error:
            return None, str(error)[:100]

    with ThreadPoolExecutor(max_workers=CONCURRENT_REQUESTS) as pool:
        answers = list(pool.map(one, batches))
    wrong = [f"request {n}: HTTP {status} {got}" for n, ((status, got), rows) in enumerate(zip(answers, batches))
             if status != 200 or got != POOL.expected(rows)]
    assert not wrong, feedback(f"{CONCURRENT_REQUESTS} x HTTP 200 with the model's predictions",
                               f"{len(wrong)} failed: " + "; ".join(wrong[:5]), api.get_wrapped_container())
