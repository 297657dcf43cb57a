"""Where the CPU of one 1,000-row POST /predict goes: the breakdown behind `make bench`'s batch row.

The batch target compares the service's rows per second (lab 04's image, 2 gunicorn processes, the
load clients on the same machine) with `model.predict` looping in one thread. A request costs more
than its predict, and this says how much more, in ms of CPU per request, from two measurements:
  - inside the service's own container (`docker exec`: its code, its libraries, one thread, no HTTP),
    each step of a request: parse the JSON body, validation_error, model.predict, encode the answer;
    then the whole request through Flask's test client (the steps plus Flask's own request handling);
  - during the benchmark's c=8 batch run: the CPU of the service container's processes and of the
    load clients, each divided by the requests answered.
Server CPU minus the Flask request is gunicorn, HTTP and the sockets (the kernel's share included).
Server plus client is what one request costs this machine: its cores divided by that is the most
requests per second any server setting can reach while the clients share the cores.
"""
from __future__ import annotations

import json
import os

from labkit.bench_stages import Stage, elsewhere

# Run by `python -c` in the service's container, from its WORKDIR (where the `service` package is).
# CPU time (process_time) per call, the median of 5 rounds of ~0.2 s each.
INSIDE = r"""
import json, statistics, time
import orjson
from service.app import create_app, validation_error

app = create_app()
model = app.extensions["model"]
body = orjson.dumps({"data": [[5.1, 3.5, 1.4, 0.2]] * 1000})
payload = orjson.loads(body)
rows = payload["data"]
result = model.predict(rows)
client = app.test_client()

def ms(call):
    rounds = []
    for _ in range(5):
        calls, started = 0, time.process_time()
        while time.process_time() - started < 0.2:
            call()
            calls += 1
        rounds.append(1000 * (time.process_time() - started) / calls)
    return statistics.median(rounds)

def encode():
    with app.app_context():
        return app.json.response(result=result).get_data()

steps = {"parse": ms(lambda: orjson.loads(body)), "validate": ms(lambda: validation_error(payload, 1000)),
         "predict": ms(lambda: model.predict(rows)), "encode": ms(encode),
         "flask": ms(lambda: client.post("/predict", data=body, content_type="application/json"))}
assert client.post("/predict", data=body, content_type="application/json").status_code == 200
print(json.dumps(steps))
"""


def inside(container) -> dict[str, float] | None:
    """ms of CPU per 1,000-row request of each step, measured in `container`; None if that failed
    (a student's service without validation_error, say): the table then says "not measured"."""
    exit_code, output = container.exec_run(["python", "-c", INSIDE], user="root")
    lines = output.decode(errors="replace").strip().splitlines()
    if exit_code != 0 or not lines:
        return None
    try:
        return json.loads(lines[-1])
    except ValueError:
        return None


def breakdown(steps: dict[str, float] | None, server_ms: float | None, client_ms: float, rows_rate: float,
              cores: int | None = None, machine=(None, None), requests: int = 0) -> tuple[list[Stage], str]:
    """The breakdown's rows and the sentence under them: the ceiling the measured costs allow.
    `machine`: the machine's (busy, idle) CPU seconds before and after the run of `requests`, for the
    rows "elsewhere" and "idle" (labkit.bench_stages.elsewhere)."""
    cores = cores or os.cpu_count() or 1
    steps = steps or {}
    flask = steps.get("flask")
    inner = ("parse", "validate", "predict", "encode")
    known = all(name in steps for name in inner)
    server = Stage("server in all", "the service container's CPU per request (c=8 batch run)", server_ms)
    client = Stage("client", "the load clients' CPU per request (locust, same machine)", client_ms)
    rows = [
        Stage("parse the body", "orjson.loads of the 1,000-row JSON", steps.get("parse")),
        Stage("validate", "validation_error(payload)", steps.get("validate")),
        Stage("predict", "model.predict(rows)", steps.get("predict")),
        Stage("encode the answer", "jsonify(result=...) by orjson", steps.get("encode")),
        Stage("Flask", "the request through Flask's test client, less the four above",
              flask - sum(steps[name] for name in inner) if flask is not None and known else None),
        Stage("gunicorn, HTTP, sockets", "the service container's CPU per request, less Flask's",
              server_ms - flask if server_ms is not None and flask is not None else None),
        server, client,
    ]
    if server_ms is None:
        return rows, "The service container's CPU could not be read (/proc): no ceiling computed."
    other = elsewhere([server, client], *machine, requests, "request")
    rows += other
    total = server_ms + client_ms
    ceiling = cores * 1000 / total  # requests per second when every core works on requests only
    text = (f"One request costs this machine {total:.2f} ms of CPU ({server_ms:.2f} server + {client_ms:.2f} client): "
            f"its {cores} cores serve at most {ceiling:,.0f} requests/s = {ceiling * 1000 / rows_rate:.0%} of the "
            f"in-process rows/s ({rows_rate:,.0f})")
    if other:  # the kernel's networking, docker-proxy: work the requests cause, no process is charged
        with_other = total + other[0].ms
        text += (f"; with the machine's other busy CPU (CPU elsewhere) {with_other:.2f} ms: at most "
                 f"{cores * 1000 / with_other:,.0f} requests/s")
    text += "."
    budget = cores * 1000 / (0.3 * rows_rate / 1000)  # ms per request at 30 % of the in-process rows/s
    text += f" 30 % needs a request to cost at most {budget:.2f} ms in all"
    if "predict" in steps and flask is not None:
        http = server_ms - flask + client_ms
        text += (f"; model.predict is {steps['predict']:.2f} ms of it, and the HTTP around it (gunicorn, HTTP, "
                 f"sockets and the client) alone {http:.2f} ms")
    text += "."
    return rows, text
