"""make bench's targets: each row is judged against the rows of the same run it names."""
from __future__ import annotations

from types import SimpleNamespace

from labkit.bench_targets import TARGETS, judge


def row(per_second: float, p50_ms: float | None = None) -> SimpleNamespace:
    return SimpleNamespace(per_second=per_second, p50_ms=p50_ms)


def test_a_row_that_meets_every_goal_is_ticked_and_shows_its_ratios():
    rows = {"sync:predict:c=8": row(900), "sync:lecture:c=8": row(300), "sync:health:c=8": row(1000)}
    text, met = judge("sync:predict:c=8", rows)
    assert met is True
    assert "3.0x" in text and "90%" in text


def test_one_missed_goal_crosses_the_row():
    rows = {"capstone:hit:c=8": row(900), "capstone:miss:c=8": row(800), "capstone:health:c=8": row(1500)}
    text, met = judge("capstone:hit:c=8", rows)  # faster than MISS, but only 60 % of /health
    assert met is False
    assert "60%" in text


def test_the_latency_target_judges_one_task_without_a_queue():
    assert judge("async:one-task", {"async:one-task": row(50, p50_ms=20)})[1] is True
    text, met = judge("async:one-task", {"async:one-task": row(12, p50_ms=80)})
    assert met is False and "80 ms" in text


def test_a_row_whose_baseline_was_not_measured_is_neither_ticked_nor_crossed():
    text, met = judge("capstone:tasks", {"capstone:tasks": row(500)})  # the async suite did not run
    assert met is None
    assert "not measured" in text


def test_rows_without_a_target_get_an_empty_cell():
    assert judge("sync:health:c=8", {"sync:health:c=8": row(1000)}) == ("", None)


def test_every_target_names_rows_the_bench_produces():
    known = {"sync:predict:c=8", "sync:batch:c=8", "async:tasks:2", "async:one-task", "capstone:hit:c=8",
             "capstone:tasks"}
    assert set(TARGETS) == known
