"""The targets of `make bench` (issue 17), in one table: which row each judges, and how.

A goal compares one measured quantity with a bound. Most bounds are ratios to another row of the
same run (a 2-core machine shared with other work gives noisy absolute numbers; ratios measured
side by side are what carry over to another machine).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Protocol


class Measured(Protocol):
    per_second: float
    p50_ms: float | None


Rows = Mapping[str, Measured]


@dataclass(frozen=True)
class Goal:
    """`text` (what the table prints) holds when value(rows) is >= at_least or <= at_most."""
    text: str
    value: Callable[[Rows], float]
    unit: str  # how the measured value is printed: "%", "x", "/s" or "ms"
    at_least: float | None = None
    at_most: float | None = None

    def met(self, rows: Rows) -> bool:
        value = self.value(rows)
        if self.at_least is not None and not value >= self.at_least:
            return False
        return self.at_most is None or value <= self.at_most

    def shown(self, rows: Rows) -> str:
        value = self.value(rows)
        number = {"%": f"{value:.0%}", "x": f"{value:.1f}x", "/s": f"{value:,.0f}/s", "ms": f"{value:.0f} ms"}
        return f"{self.text}: {number[self.unit]}"


def rate(key: str) -> Callable[[Rows], float]:
    return lambda rows: rows[key].per_second


def ratio(key: str, baseline: str, scale: float = 1.0) -> Callable[[Rows], float]:
    """rows[key] per second (times scale) over rows[baseline] per second."""
    return lambda rows: rows[key].per_second * scale / rows[baseline].per_second


# Row keys: "<suite>:<measurement>[:<load>]", as labkit.bench names its rows.
TARGETS: dict[str, tuple[Goal, ...]] = {
    "sync:predict:c=8": (
        Goal("≥ 3x the dev server", ratio("sync:predict:c=8", "sync:lecture:c=8"), "x", at_least=3),
        Goal("≥ 80 % of /health", ratio("sync:predict:c=8", "sync:health:c=8"), "%", at_least=0.8),
    ),
    "sync:batch:c=8": (
        Goal("≥ 30 % of in-process rows/s", ratio("sync:batch:c=8", "sync:model-rows", scale=1000), "%",
             at_least=0.3),
    ),
    "async:tasks:2": (
        Goal("≥ 600 tasks/s", rate("async:tasks:2"), "/s", at_least=600),
    ),
    # The latency target on a task that waits behind no other: in a burst of n tasks (the row above)
    # the median task waits behind n/2, so that p50 is at least n/2 / tasks per second (833 ms for
    # 1,000 tasks at 600/s): it measures the queue's length, not the service.
    "async:one-task": (
        Goal("p50 ≤ 50 ms", lambda rows: rows["async:one-task"].p50_ms, "ms", at_most=50),
    ),
    "capstone:hit:c=8": (
        Goal("≥ MISS", ratio("capstone:hit:c=8", "capstone:miss:c=8"), "%", at_least=1.0),
        Goal("≥ 70 % of /health", ratio("capstone:hit:c=8", "capstone:health:c=8"), "%", at_least=0.7),
    ),
    "capstone:tasks": (
        Goal("≥ 90 % of lab 05's", ratio("capstone:tasks", "async:tasks:2"), "%", at_least=0.9),
    ),
}


def judge(key: str, rows: Rows) -> tuple[str, bool | None]:
    """The target cell of row `key` and whether it is met (None: no target, or a row it needs is missing)."""
    goals = TARGETS.get(key, ())
    try:
        cells = [(goal.shown(rows), goal.met(rows)) for goal in goals]
    except (KeyError, TypeError, ZeroDivisionError):  # a suite that did not run or failed
        return "; ".join(goal.text for goal in goals) + (": not measured" if goals else ""), None
    if not cells:
        return "", None
    return "; ".join(text for text, _ in cells), all(ok for _, ok in cells)
