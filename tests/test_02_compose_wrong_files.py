"""The lab 02 grader on wrong compose files: each loses exactly the points of the requirement it
breaks, with feedback that names what is wrong, and nothing else.

Each wrong file (tests/fixtures/02-compose/) is the reference compose.yaml with one classic mistake.
The three gradings run at once: they are mostly waiting for containers, and each uses its own
projects, ports and image tag.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOLUTION = ROOT / "solutions" / "02-compose"
FIXTURES = ROOT / "tests" / "fixtures" / "02-compose"
GRADED = "tests/graded/test_02_compose.py"

# wrong file -> (the one test it must fail, words its feedback must contain)
WRONG = {
    "database-published.yaml": ("test_redis_publishes_no_port", ["redis publishes", "6379"]),
    "no-healthcheck-wait.yaml": ("test_api_waits_for_a_healthy_redis", ["service_healthy"]),
    "anonymous-volume.yaml": ("test_history_survives_down_and_up", ["anonymous volume"]),
}


@pytest.fixture(scope="module")
def gradings(tmp_path_factory):
    """wrong file -> (grades.json content, pytest's output), graded in parallel."""
    running = {}
    for wrong in WRONG:
        folder = tmp_path_factory.mktemp(wrong.removesuffix(".yaml"))
        submission = folder / "submission" / "02-compose"
        shutil.copytree(SOLUTION, submission)
        shutil.copy(FIXTURES / wrong, submission / "compose.yaml")
        command = [sys.executable, "-m", "pytest", GRADED, "--target", str(submission.parent),
                   "--grades-json", str(folder / "grades.json"), "-q"]
        running[wrong] = (folder, subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE,
                                                   stderr=subprocess.STDOUT, text=True))
    results = {}
    try:
        for wrong, (folder, process) in running.items():
            output, _ = process.communicate(timeout=480)
            grades = folder / "grades.json"
            results[wrong] = (json.loads(grades.read_text()) if grades.exists() else None, output)
    finally:
        for _, process in running.values():
            if process.poll() is None:
                process.terminate()  # SIGTERM: the grader's fixtures still remove their stacks
                process.wait(timeout=60)
    return results


@pytest.mark.parametrize("wrong", sorted(WRONG))
def test_a_wrong_compose_file_loses_exactly_the_points_of_its_requirement(wrong, gradings):
    """database published / no healthcheck wait / anonymous volume: one requirement lost, named."""
    grades, output = gradings[wrong]
    assert grades is not None, output[-3000:]
    failed = [t for t in grades["tests"] if not t["passed"]]
    expected_test, words = WRONG[wrong]
    assert [t["test"].rsplit("::", 1)[-1] for t in failed] == [expected_test], output[-3000:]
    lost = grades["max_points"] - grades["points"]
    assert lost == failed[0]["max_points"] > 0, grades
    for word in words:
        assert word in failed[0]["feedback"], failed[0]["feedback"]
    assert "Traceback" not in output, output[-3000:]
