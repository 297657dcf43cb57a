"""Hostile compose and stack files (tests/fixtures/hostile/): each is refused by the grader's policy
with short feedback naming the offending key, before anything starts in Docker; nothing is written
on the host; every requirement of the lab scores 0.

Each fixture is an overlay on solutions/<lab>/, graded by its own pytest process; they run at once
(a refusal takes seconds). "Nothing started" is observed in the engine's event stream: no
container, network or volume was created by that process's run.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import docker
import pytest

ROOT = Path(__file__).resolve().parent.parent
HOSTILE = ROOT / "tests" / "fixtures" / "hostile"
GRADED = {"compose": ("02-compose", "tests/graded/test_02_compose.py"),
          "stack": ("03-swarm", "tests/graded/test_03_swarm.py")}
MARKER = Path("/tmp/labkit-hostile-marker")  # what bind-host-tmp would write on the host
REFUSAL_SECONDS = 120  # a refused file is graded (every requirement failed) within this
FEEDBACK_CHARS = 600  # and each requirement's feedback is at most this long

# fixture -> words the feedback must contain (the offending key)
CASES = {
    "compose/bind-host-tmp": ["services.redis.volumes[0]", "/tmp"],
    "compose/bind-host-root": ["services.redis.volumes[0]", "'/'"],
    "compose/docker-socket": ["services.redis.volumes[0]", "docker.sock"],
    "compose/privileged": ["services.redis.privileged"],
    "compose/network-host": ["services.api.network_mode", "host"],
    "compose/env-file-outside": ["services.api.env_file", "outside the lab folder"],
    "compose/extra-service": ["services.miner"],
    "stack/socket-and-caps": ["services.gateway.cap_add", "services.gateway.volumes[0]", "services.api.ports"],
}


@pytest.fixture(scope="module")
def gradings(tmp_path_factory):
    """fixture -> (grades.json content, output, seconds, pid of its pytest), graded at once."""
    MARKER.unlink(missing_ok=True)
    running = {}
    for case in CASES:
        kind, name = case.split("/")
        lab, graded = GRADED[kind]
        folder = tmp_path_factory.mktemp(name)
        submission = folder / "submission" / lab
        shutil.copytree(ROOT / "solutions" / lab, submission, symlinks=True)
        shutil.copytree(HOSTILE / case, submission, dirs_exist_ok=True)
        command = [sys.executable, "-m", "pytest", graded, "--target", str(submission.parent),
                   "--grades-json", str(folder / "grades.json"), "-q", "-p", "no:cacheprovider"]
        running[case] = (folder, time.monotonic(), subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    results = {}
    try:
        for case, (folder, started, process) in running.items():
            output, _ = process.communicate(timeout=REFUSAL_SECONDS * 3)
            grades = folder / "grades.json"
            results[case] = (json.loads(grades.read_text()) if grades.exists() else None, output,
                             time.monotonic() - started, process.pid)
    finally:
        for _, _, process in running.values():
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=60)
    return results


@pytest.fixture(scope="module")
def created_by(gradings):
    """pid of a grading -> names of the containers, networks and volumes its run created."""
    client = docker.from_env()
    since = int(time.time()) - int(max(seconds for *_, seconds, _ in gradings.values())) - 30
    found: dict[int, list[str]] = {}
    events = client.events(since=since, until=int(time.time()) + 1, decode=True,
                           filters={"type": ["container", "network", "volume"], "event": ["create"]})
    for event in events:
        attributes = event.get("Actor", {}).get("Attributes", {})
        names = " ".join([attributes.get("name", ""), attributes.get("com.docker.compose.project", ""),
                          attributes.get("com.docker.stack.namespace", ""), attributes.get("labkit.run", "")])
        for *_, pid in gradings.values():
            if f"labkit-{pid}-" in names or f" {pid}-" in f" {attributes.get('labkit.run', '')}":
                found.setdefault(pid, []).append(attributes.get("name", "?"))
    client.close()
    return found


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_hostile_file_is_refused_before_anything_starts(case, gradings, created_by):
    """Every requirement 0, feedback naming the key, within the bound; nothing created in Docker."""
    grades, output, seconds, pid = gradings[case]
    assert grades is not None, output[-3000:]
    assert grades["points"] == 0 and grades["tests"], grades
    for test in grades["tests"]:
        assert "was not started" in test["feedback"], test
        assert len(test["feedback"]) <= FEEDBACK_CHARS, test["feedback"]
    for word in CASES[case]:
        assert word in grades["tests"][0]["feedback"], grades["tests"][0]["feedback"]
    assert seconds < REFUSAL_SECONDS, f"graded in {seconds:.0f} s"
    assert "Traceback" not in output, output[-3000:]
    assert not created_by.get(pid), f"{case} created {created_by.get(pid)} in Docker"


def test_nothing_was_written_on_the_host(gradings):
    """The bind mount of /tmp would have left a marker there; the host's /tmp has none."""
    assert not MARKER.exists()
