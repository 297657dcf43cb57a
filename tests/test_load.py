"""labkit.load, the locust-driven load generator, against a small local HTTP server."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from labkit.load import Load, run

ROW = {"data": [[5.1, 3.5, 1.4, 0.2]]}


class Recorder(BaseHTTPRequestHandler):
    """Answers 200 {"result": [0], "task_id": <n>}, or 503 while the server's `down` flag is set."""
    protocol_version = "HTTP/1.1"

    def do_POST(self):  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with self.server.lock:
            self.server.bodies.append(json.loads(body))
            number = len(self.server.bodies)
        status = 503 if self.server.down.is_set() else 200
        answer = json.dumps({"result": [0], "task_id": str(number)}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    """A threading HTTP server on a free loopback port; `.url`, `.bodies` it received, `.down` (a switch to 503)."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    httpd.bodies, httpd.lock, httpd.down = [], threading.Lock(), threading.Event()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}/predict"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def test_a_request_budget_is_sent_exactly_once_over_two_processes_with_unique_payloads(server, tmp_path):
    result = run(server.url, users=4, processes=2, max_requests=101, seconds=60, payload=ROW, unique=True,
                 csv=str(tmp_path / "run"))
    assert len(server.bodies) == 101
    assert len({json.dumps(body) for body in server.bodies}) == 101, "a payload was repeated"
    assert result.statuses == {200: 101} and result.requests == 101 and result.errors == 0
    assert (tmp_path / "run-0_stats.csv").is_file() and (tmp_path / "run-1_stats.csv").is_file()


def test_answers_are_counted_by_status_and_collected_fields_keep_their_send_time(server, tmp_path):
    result = run(server.url, users=2, max_requests=20, seconds=60, payload=ROW, collect="task_id",
                 csv=str(tmp_path / "run"))
    assert result.requests == 20 and result.errors == 0 and result.statuses == {200: 20}
    assert sorted(int(task_id) for task_id, _ in result.collected) == list(range(1, 21))
    assert 0 < result.p50_ms <= result.p99_ms < 10_000 and result.rps > 0
    stats = (tmp_path / "run_stats.csv").read_text().splitlines()
    assert stats[0].startswith("Type,Name,Request Count") and ",Aggregated,20," in stats[-1]


def test_an_answer_unlike_the_expected_body_is_an_error(server):
    result = run(server.url, users=1, max_requests=5, seconds=30, payload=ROW, expect={"result": [1]})
    assert result.statuses == {200: 5} and result.errors == 5 and result.requests == 0


def test_background_load_counts_503_apart_from_200_and_stops_when_told(server):
    with Load(server.url, users=2, seconds=60, max_requests=5000, payload=ROW, ok=(200, 503)) as load:
        assert load.wait_for(10, timeout=30), "no answers within 30 s"
        server.down.set()
        assert load.wait_for(10, timeout=30, status=503), "no 503 counted within 30 s"
    assert load.statuses[200] >= 10 and load.statuses[503] >= 10
    assert load.failed == 0 and load.result.seconds < 60, "stop() did not end the run early"
    assert load.sent == len(server.bodies) == load.result.requests


def test_a_refused_connection_is_counted_by_the_exceptions_name():
    result = run("http://127.0.0.1:9/predict", users=1, max_requests=3, seconds=30, payload=ROW)
    assert result.statuses == {"ConnectionRefusedError": 3} and result.errors == 3
