"""Hostile submissions (tests/fixtures/hostile/) stay inside their containers.

Each case grades an attacking submission like any other (a pytest subprocess on tests/graded) or
starts its command under the grader's LIMITS, and checks: short feedback within a stated bound, no
trace on the host, no inflated grade, nothing left in Docker.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import docker
import pytest

from labkit.resources import find_owned, run_of
from labkit.testing import LIMITS, Feedback, LabContainer, ServingWait, log_tail, wait_until

ROOT = Path(__file__).resolve().parent.parent
HOSTILE = ROOT / "tests" / "fixtures" / "hostile"
HOST_CANARIES = [Path("/tmp/labkit-hostile-import"), Path("/tmp/labkit-hostile-build"),
                 Path.home() / "labkit-hostile-import", ROOT / "labkit-hostile-import", Path("/work/grades.json")]
BUILD_DEADLINE = 20      # seconds: the endless build is stopped after this (LABKIT_BUILD_DEADLINE)
SHORT_RUN_SECONDS = 120  # a rejected or stopped submission is graded (with a failing table) within this
LAB04_RUN_SECONDS = 300  # the whole lab 04 module on a submission whose service never starts

@pytest.fixture
def no_canaries():
    """Fails the test when an attack left one of its files on the host (removes stale ones first)."""
    for canary in HOST_CANARIES:
        if canary.name.startswith("labkit-hostile"):
            canary.unlink(missing_ok=True)
    existed = {c for c in HOST_CANARIES if c.exists()}
    yield
    left = [str(c) for c in HOST_CANARIES if c.exists() and c not in existed]
    assert not left, f"the submission left files on the host: {left}"


def grade(lab: str, submission: Path, out: Path, **env: str) -> tuple[dict, float, int]:
    """(grades.json, seconds, pid) of grading `submission` (a folder holding `lab`) in a subprocess."""
    grades = out / "grades.json"
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", str(ROOT / "tests" / "graded" / f"test_{lab.replace('-', '_')}.py"),
         "--target", str(submission), "--grades-json", str(grades), "-q", "-p", "no:cacheprovider"],
        cwd=out, env={**os.environ, "DOCKER_BUILDKIT": "0", **env},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    process.wait(timeout=LAB04_RUN_SECONDS + 120)
    return json.loads(grades.read_text()), time.monotonic() - started, process.pid


def left_in_docker(pid: int) -> list[str]:
    """What a finished grading run (by its pytest pid) left in Docker, besides the build layers every run
    keeps on purpose as cache for the next submission (`labkit clean` removes them)."""
    things = find_owned(docker.from_env(), None)
    return [f"{kind} {getattr(o, 'name', '') or o.id}" for kind, objs in things.items() for o in objs
            if kind != "layers" and run_of(o).startswith(f"{pid}-")]


def everything_failed(grades: dict) -> bool:
    return grades["points"] == 0 and grades["tests"] and not any(t["passed"] for t in grades["tests"])


def test_a_link_to_a_host_file_is_rejected_without_leaking_it(tmp_path, no_canaries):
    """Links to /etc/passwd and /etc/hostname: rejected before any build, nothing of them in the feedback."""
    submission = tmp_path / "submission"
    shutil.copytree(HOSTILE / "link-to-host-file", submission)
    os.symlink("/etc/passwd", submission / "01-docker" / ".dockerignore")
    os.symlink("/etc/hostname", submission / "01-docker" / "app.py")
    grades, seconds, pid = grade("01-docker", submission, tmp_path)
    text = json.dumps(grades)
    assert everything_failed(grades), text[:500]
    assert "symbolic link" in grades["tests"][0]["feedback"], grades["tests"][0]["feedback"]
    assert "root:x:0:0" not in text and Path("/etc/hostname").read_text().strip() not in text
    assert seconds < SHORT_RUN_SECONDS, f"graded in {seconds:.0f} s"
    assert not left_in_docker(pid)


def test_a_build_that_never_ends_is_stopped_and_named(tmp_path, no_canaries):
    """RUN sleep infinity: stopped after the build deadline, the feedback names the step; build-time
    writes stay in the build container."""
    grades, seconds, pid = grade("01-docker", HOSTILE / "endless-build", tmp_path,
                                 LABKIT_BUILD_DEADLINE=str(BUILD_DEADLINE))
    builds = next(t for t in grades["tests"] if t["test"].endswith("test_the_image_builds"))
    assert not builds["passed"] and "RUN sleep infinity" in builds["feedback"], builds["feedback"]
    assert f"within {BUILD_DEADLINE} s" in builds["feedback"]
    assert everything_failed(grades)
    assert seconds < BUILD_DEADLINE + SHORT_RUN_SECONDS, f"graded in {seconds:.0f} s"
    assert not left_in_docker(pid)


def test_code_that_writes_outside_its_folder_changes_nothing_on_the_host(tmp_path, no_canaries):
    """Lab 04 code that writes to /tmp, $HOME and every grades.json it finds, at import: it runs only in
    its containers; the grades are the grader's (0 points), the modified given file is reported."""
    grades, seconds, pid = grade("04-flask-serving", HOSTILE / "writes-outside", tmp_path)
    assert everything_failed(grades), json.dumps(grades)[:500]
    assert grades["target"] == str(HOSTILE / "writes-outside") and len(grades["tests"]) >= 10
    assert any("service/__init__.py" in note for note in grades["labs"]["04-flask-serving"]["notes"])
    assert seconds < LAB04_RUN_SECONDS, f"graded in {seconds:.0f} s"
    assert not left_in_docker(pid)


@pytest.fixture
def run_id():
    """A run id for the containers these tests start directly; removed at the end."""
    from labkit.resources import new_run_id, remove_labelled

    run = new_run_id()
    yield run
    remove_labelled(docker.from_env(), run)


def test_a_container_flooding_stdout_keeps_a_bounded_log(run_id):
    """`yes` for 5 s: docker keeps at most LIMITS.log_bytes of its log, the feedback a few lines."""
    container = LabContainer("debian:bookworm-slim", run_id, f"labkit-{run_id}-flood").with_command(
        ["sh", "-c", "yes flooding-the-log"])
    container.start()
    try:
        time.sleep(5)  # the flood itself is what is measured: it must run for a while
        wrapped = container.get_wrapped_container()
        logged = len(wrapped.logs())
        assert logged <= 2 * 1024 * 1024, f"{logged} bytes of log kept"
        assert len(log_tail(wrapped)) < 4000
    finally:
        container.remove()


def test_a_fork_bomb_is_held_at_the_pids_limit_and_reported(run_id):
    """A fork bomb as the server: at most LIMITS.pids processes, feedback within 20 s, removed within 30 s."""
    container = LabContainer("debian:bookworm-slim", run_id, f"labkit-{run_id}-forkbomb").publish(8000)
    # Each process forks two more, then holds its pid as `sleep` (exec: no fork of its own). The classic
    # `bomb | bomb &` collapses once forks fail (dash exits on "Cannot fork"), sometimes between two
    # samples of `docker top`, which then saw 2 processes: a flaky test, not a contained bomb.
    container.with_command(["sh", "-c", "bomb() { bomb & bomb & exec sleep 600; }; bomb"])
    container.start()
    try:
        wrapped = container.get_wrapped_container()
        peak = 0

        def exploding() -> bool:  # the kernel refuses forks past pids.max; `docker top` samples the count
            nonlocal peak
            peak = max(peak, len(wrapped.top()["Processes"]))
            return peak >= 30
        assert wait_until(exploding, 15, 0.5), f"the fork bomb did not start ({peak} processes)"
        wrapped.reload()
        assert wrapped.attrs["HostConfig"]["PidsLimit"] == LIMITS.pids and peak <= LIMITS.pids, f"{peak} processes"
        began = time.monotonic()
        with pytest.raises(Feedback, match="expected an HTTP answer on port 8000"):
            ServingWait(8000, "/health").with_startup_timeout(15).with_poll_interval(0.5).wait_until_ready(container)
        assert time.monotonic() - began < 20
    finally:
        began = time.monotonic()
        container.remove()
    assert time.monotonic() - began < 30
