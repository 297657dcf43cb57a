"""make bench's breakdowns: where the CPU of a 1,000-row request and of an async task goes, and the
ceiling that CPU allows on the machine's cores."""
from __future__ import annotations

from labkit.bench import task_ceilings
from labkit.bench_batch import breakdown
from labkit.bench_stages import Stage

STEPS = {"parse": 0.2, "validate": 0.1, "predict": 0.1, "encode": 0.05, "flask": 0.6}


def test_the_batch_breakdown_splits_the_server_s_cpu_into_its_steps():
    rows, _ = breakdown(STEPS, server_ms=1.0, client_ms=0.5, rows_rate=5_000_000, cores=2)
    ms = {row.name: row.ms for row in rows}
    assert round(ms["Flask"], 6) == 0.15  # 0.6 less the four steps
    assert round(ms["gunicorn, HTTP, sockets"], 6) == 0.4  # the server's 1.0 less Flask's 0.6
    assert ms["server in all"] == 1.0 and ms["client"] == 0.5


def test_the_ceiling_is_the_cores_over_what_one_request_costs():
    _, text = breakdown(STEPS, server_ms=1.0, client_ms=0.5, rows_rate=5_000_000, cores=2)
    # 2 cores / 1.5 ms = 1,333 requests/s = 1.33M rows/s = 27 % of 5M; 30 % needs 2,000 ms / 1,500 = 1.33 ms
    assert "1,333 requests/s" in text and "27%" in text and "at most 1.33 ms" in text
    assert "HTTP around it (gunicorn, HTTP, sockets and the client) alone 0.90 ms" in text  # 1.0 - 0.6 + 0.5


def test_without_the_server_s_cpu_no_ceiling_is_claimed():
    rows, text = breakdown(None, server_ms=None, client_ms=0.5, rows_rate=5_000_000, cores=2)
    assert all(row.ms is None for row in rows if row.name != "client")
    assert "could not be read" in text


def test_the_task_ceiling_sums_every_part_s_cpu():
    stages = {"lab 05": [Stage("end to end", "", 5.0), Stage("CPU: HTTP front", "", 1.0),
                         Stage("CPU: worker", "", 1.5), Stage("CPU: client", "", 0.5)],
              "capstone": [Stage("CPU: worker", "", None)]}  # not measured: no line
    [line] = task_ceilings(stages, cores=2)
    assert line.startswith("lab 05: a task costs 3.00 ms") and "at most 667 tasks/s" in line
    assert "elsewhere" not in line  # not measured here: no second bound
    stages["lab 05"].append(Stage("CPU elsewhere", "", 1.0))
    assert "(CPU elsewhere) 4.00 ms: at most 500 tasks/s" in task_ceilings(stages, cores=2)[0]


def test_the_machine_s_other_busy_and_idle_cpu_are_rows_of_their_own():
    # 1,000 requests; the machine was busy 2 s and idle 1 s over them: 2 ms and 1 ms per request
    rows, text = breakdown(STEPS, server_ms=1.0, client_ms=0.5, rows_rate=5_000_000, cores=2,
                           machine=((10.0, 100.0), (12.0, 101.0)), requests=1000)
    ms = {row.name: row.ms for row in rows}
    assert round(ms["CPU elsewhere"], 6) == 0.5 and round(ms["CPU idle"], 6) == 1.0
    # and the ceiling with it: 1.5 + 0.5 ms per request on 2 cores
    assert "(CPU elsewhere) 2.00 ms: at most 1,000 requests/s" in text


def test_a_second_service_s_task_ceiling_is_compared_with_the_first_s():
    stages = {"lab 05": [Stage("CPU: worker", "", 2.0)], "capstone": [Stage("CPU: worker", "", 2.5)]}
    assert task_ceilings(stages, cores=2)[-1] == "capstone's ceiling is 80% of lab 05's."
