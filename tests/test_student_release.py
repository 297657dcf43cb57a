"""labkit release --student DIR: a repository without the answers, in which `make grade LAB=01` works."""
from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from labkit.classroom import lab_result, output_line
from labkit.requirements import collect, totals
from labkit.student_release import MAINTAINER_TARGETS, write_student_release

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    """The student release of this working tree, in a scratch folder."""
    dest = tmp_path_factory.mktemp("student") / "course"
    write_student_release(dest)
    return dest


def in_release(release: Path, *command: str, timeout: float = 180) -> subprocess.CompletedProcess:
    """A command in the release with this virtualenv, importing the release's own labkit (PYTHONPATH),
    without `make venv` (its stamp counts as up to date: -o)."""
    env = {**os.environ, "PYTHONPATH": str(release)}
    return subprocess.run(list(command), cwd=release, env=env, capture_output=True, text=True, timeout=timeout)


def test_the_release_has_no_answers_and_no_maintainer_tests(release):
    files = {p.relative_to(release).as_posix() for p in release.rglob("*") if p.is_file()}
    assert not any(f.startswith(("solutions/", ".ci/")) for f in files)
    others = {f for f in files if f.startswith("tests/") and not f.startswith(("tests/graded/", "tests/fixtures/"))}
    assert others == {"tests/conftest.py"}
    assert not any(f.startswith(("tests/fixtures/submissions/", "tests/fixtures/errata/")) for f in files)
    assert "exercises/04-flask-serving/service/app.py" in files and "STUDENT_RELEASE.md" in files
    for built in ["docker-compose.yaml", "Makefile", *(f for f in files if f.endswith(".ipynb"))]:
        text = (release / built).read_text()
        assert "solutions/0" not in text and "../solutions" not in text, built
    assert "build: exercises/04-flask-serving" in (release / "docker-compose.yaml").read_text()


def test_maintainer_targets_say_they_are_not_in_a_student_release(release):
    for target in MAINTAINER_TARGETS:
        result = in_release(release, "make", "-s", target, timeout=30)
        assert result.returncode == 2 and "student release" in result.stdout, (target, result.stdout, result.stderr)


def test_make_up_says_it_builds_the_students_own_service_and_waits_for_labs_04_and_05(release):
    result = in_release(release, str(BIN / "python"), "-m", "labkit.services", timeout=60)
    assert result.returncode == 1
    assert "YOUR exercises/04-flask-serving" in result.stdout and "make grade LAB=04,05" in result.stdout


def test_the_classroom_workflow_has_one_step_per_lab_with_its_points(release):
    text = (release / ".github" / "workflows" / "classroom.yml").read_text()
    for lab, points in totals(collect()).items():
        assert f'- name: "{lab}: {points:g} points"' in text and f"make grade LAB={lab[:2]}" in text
    assert "runners: lab01,lab02,lab03,lab04,lab05" in text and "setup_host" not in text
    job = yaml.safe_load(text)["jobs"]["run-autograding-tests"]
    reporter = job["steps"][-1]
    assert reporter["uses"].startswith("classroom-resources/autograding-grading-reporter@")
    assert set(reporter["env"]) == {f"LAB{lab[:2]}_RESULTS" for lab in totals(collect())}


def test_make_grade_lab_01_grades_the_stubs_of_the_release_to_zero_quickly(release):
    began = time.monotonic()
    result = in_release(release, "make", "grade", "LAB=01", f"BIN={BIN}", "-o", f"{BIN}/.installed")
    took = time.monotonic() - began
    grades = json.loads((release / "grades.json").read_text())
    assert list(grades["labs"]) == ["01-docker"], result.stdout[-3000:] + result.stderr[-2000:]
    assert grades["points"] == 0 and grades["max_points"] == 14 and len(grades["tests"]) == 8
    assert "01-docker: 0 / 14" in result.stdout
    assert took < 120, f"took {took:.0f} s"
    reported = json.loads(base64.b64decode(output_line(release / "grades.json", "01-docker").split("=", 1)[1]))
    assert reported["max_score"] == 14 and sum(t["score"] for t in reported["tests"]) == 0


def test_a_classroom_result_carries_the_points_of_each_requirement():
    grades = {"tests": [
        {"lab": "01-docker", "requirement": "builds", "points": 2.0, "max_points": 2.0, "passed": True, "feedback": ""},
        {"lab": "01-docker", "requirement": "serves", "points": 0.0, "max_points": 3.0, "passed": False,
         "feedback": "expected 200; got 500"},
        {"lab": "02-compose", "requirement": "other lab", "points": 1.0, "max_points": 1.0, "passed": True,
         "feedback": ""}]}
    result = lab_result(grades, "01-docker")
    assert (result["status"], result["max_score"]) == ("fail", 5.0)
    assert lab_result({}, "01-docker", 14)["max_score"] == 14  # no grades written: the points are lost, not absent
    assert [(t["name"], t["status"], t["score"]) for t in result["tests"]] == [("builds", "pass", 2.0),
                                                                               ("serves", "fail", 0.0)]
