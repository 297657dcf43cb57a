"""`make test`'s stages, in four lanes side by side, with the time of each stage at the end.

    python -m labkit.suite

The stages are the Makefile's own targets (one definition each). Lanes run at once because most of a
stage's time is waiting (containers starting, health intervals, a swarm converging, a node draining),
not CPU:

    lane 1: test-unit (capstone fault tests, errata, docs, the grader's own tests)
    lane 2: test-graded (solutions: 100 %), then test-stubs (stubs: 0; compares with test-graded's tests)
    lane 3: test-notebooks-a (notebooks 01, 03, 05)
    lane 4: test-notebooks-b (notebooks 02, 04, 06), then grader-smoke

(measured on this 2-core machine with three lanes, the notebooks in one: 489 s; 428 s + 51 + 171; 633 s,
the CPUs idle a third of the run: the notebooks' lane alone was longer than 10 minutes with its cluster)

Before the lanes, the build cache is warmed: the course's two dependency layers (the labs' common
`FROM python:3.11-slim ... RUN pip install -r requirements.txt` and lab 01's lecture server) are built
once and kept under `labkit-cache/*` tags, which `labkit clean` leaves alone. Every later build of
those lines is then a cache hit, instead of three lanes running the same pip install at once (under
load one of them outlived its 90 s budget); a warm run installs nothing.

Each stage's output goes to build/logs/<stage>.log; a failing stage's last lines are printed, and its
lane stops (`KEEP_GOING=1` runs the lane's later stages anyway, to see everything that fails). A
single-node swarm is joined before the lanes start (and left at the end if this run joined it): joining
or leaving a swarm while compose containers run breaks their DNS on Engine 20.10, and the swarm lab
and notebook 03 would otherwise both try to join it at the same moment.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from labkit.engine import builder_env, docker, join_single_node_swarm

ROOT = Path(__file__).resolve().parent.parent
LOGS = ROOT / "build" / "logs"
LANES = [["test-unit"], ["test-graded", "test-stubs"], ["test-notebooks-a"], ["test-notebooks-b", "grader-smoke"]]
STAGE_TIMEOUT = 45 * 60
# Tag -> a build context whose Dockerfile starts with the dependency lines other builds share.
WARM_BUILDS = {"labkit-cache/dependencies": "labs/04-flask-serving/lecture-server",
               "labkit-cache/lecture-server": "labs/01-docker/lecture-server"}
WARM_TIMEOUT = 15 * 60


def warm_build_cache() -> None:
    """Build each of WARM_BUILDS once; a failure only costs the lanes their own build of it."""
    for tag, context in WARM_BUILDS.items():
        started = time.monotonic()
        print(f"[suite] build cache: {context} ...", flush=True)
        try:
            result = subprocess.run(["docker", "build", "-q", "-t", tag, context], cwd=ROOT, capture_output=True,
                                    text=True, timeout=WARM_TIMEOUT, env={**os.environ, **builder_env()})
            verdict = "ok" if result.returncode == 0 else f"failed: {result.stderr.strip()[-300:]}"
        except subprocess.TimeoutExpired:
            verdict = f"still building after {WARM_TIMEOUT} s"
        print(f"[suite] build cache: {context} {verdict} ({time.monotonic() - started:.0f} s)", flush=True)


def join_swarm() -> bool:
    """Join a single-node swarm if the engine is in none; True when this run joined it."""
    try:
        return join_single_node_swarm()
    except RuntimeError as error:
        print(f"[suite] could not join a swarm: {error}", flush=True)
        return False


class Lane(threading.Thread):
    """Runs its stages one after the other; stops at the first that fails (unless KEEP_GOING=1)."""

    def __init__(self, stages: list[str], times: dict, failed: list) -> None:
        super().__init__(daemon=True)
        self.stages, self.times, self.failed = stages, times, failed

    def run(self) -> None:
        for stage in self.stages:
            log = LOGS / f"{stage}.log"
            print(f"[suite] {stage} ... (log: {log.relative_to(ROOT)})", flush=True)
            started = time.monotonic()
            with open(log, "w") as out:
                try:
                    code = subprocess.run(["make", "--no-print-directory", stage], cwd=ROOT, stdout=out,
                                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          timeout=STAGE_TIMEOUT).returncode
                except subprocess.TimeoutExpired:
                    code = f"timed out after {STAGE_TIMEOUT} s"
            self.times[stage] = time.monotonic() - started
            verdict = "ok" if code == 0 else f"FAILED ({code})"
            print(f"[suite] {stage}: {verdict} in {self.times[stage]:.0f} s", flush=True)
            if code != 0:
                self.failed.append(stage)
                tail = log.read_text(errors="replace").splitlines()[-60:]
                print(f"[suite] last lines of {log.relative_to(ROOT)}:\n    " + "\n    ".join(tail), flush=True)
                if os.environ.get("KEEP_GOING") != "1":
                    return


def main() -> int:
    LOGS.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    joined = join_swarm()
    warm_build_cache()
    times: dict[str, float] = {}
    failed: list[str] = []
    lanes = [Lane(stages, times, failed) for stages in LANES]
    try:
        for lane in lanes:
            lane.start()
        for lane in lanes:
            lane.join()
    finally:
        if joined:
            docker("swarm", "leave", "--force", timeout=120)
    print(f"\n[suite] time per stage ({len(LANES)} lanes side by side):")
    for number, stages in enumerate(LANES, 1):
        for stage in stages:
            shown = f"{times[stage]:6.0f} s" if stage in times else "   not run"
            print(f"  lane {number}  {stage:<16} {shown}")
    print(f"  total (wall clock)       {time.monotonic() - began:6.0f} s")
    if failed:
        print(f"[suite] FAILED: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
