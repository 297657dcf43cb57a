"""make grade LAB=…: the labs asked for, or the labs the student started; the others "not started" at once."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from labkit.progress import (GRADE, LABS, NOT_STARTED, SKIP, UnknownLab, parse_labs, planner, started)
from labkit.submission import STUDENT_FILES

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("spec, labs", [
    ("01", ["01-docker"]),
    ("1", ["01-docker"]),
    ("01-docker", ["01-docker"]),
    ("01,04", ["01-docker", "04-flask-serving"]),
    (" 05 , 02,05", ["05-celery", "02-compose"]),
])
def test_lab_names_are_read_as_numbers_or_folders(spec, labs):
    assert parse_labs(spec) == labs


def test_an_unknown_lab_names_the_known_ones():
    with pytest.raises(UnknownLab, match="01-docker, 02-compose"):
        parse_labs("07")


@pytest.fixture
def tree(tmp_path):
    """A copy of the shipped exercises/: every lab still the stubs."""
    shutil.copytree(ROOT / "exercises", tmp_path / "exercises")
    return tmp_path / "exercises"


def test_the_shipped_stubs_are_not_started(tree):
    assert [lab for lab in LABS if started(lab, tree / lab)] == []


def test_the_solutions_are_started():
    assert all(started(lab, ROOT / "solutions" / lab) for lab in LABS)


@pytest.mark.parametrize("lab", LABS)
def test_one_written_student_file_starts_its_lab_alone(tree, lab):
    relative = STUDENT_FILES[lab][-1]
    shutil.copy(ROOT / "solutions" / lab / relative, tree / lab / relative)
    assert [other for other in LABS if started(other, tree / other)] == [lab]


def test_line_endings_trailing_blanks_and_a_missing_folder_are_not_a_start(tree):
    dockerfile = tree / "01-docker" / "Dockerfile"
    dockerfile.write_bytes(dockerfile.read_text().replace("\n", "  \r\n").encode() + b"\r\n")
    shutil.rmtree(tree / "02-compose")
    assert not started("01-docker", tree / "01-docker")
    assert not started("02-compose", tree / "02-compose")


def test_the_planner_grades_skips_or_reports(tree):
    shutil.copy(ROOT / "solutions" / "01-docker" / "Dockerfile", tree / "01-docker" / "Dockerfile")
    assert [planner("started", tree)(lab) for lab in ("01-docker", "02-compose")] == [GRADE, NOT_STARTED]
    assert [planner("02", tree)(lab) for lab in ("01-docker", "02-compose")] == [SKIP, GRADE]
    assert {planner("all", tree)(lab) for lab in LABS} == {GRADE}


def test_grading_labs_not_started_runs_nothing_and_reports_each(tree, tmp_path):
    """`pytest tests/graded --lab started` on the stubs: every lab "not started", 0 points, in seconds."""
    grades = tmp_path / "grades.json"
    began = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "pytest", "tests/graded", "--target", str(tree), "--lab", "started",
                             "--grades-json", str(grades), "-q", "-p", "no:warnings"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120, env={"PATH": "", "LANG": "C"})
    took = time.monotonic() - began
    record = json.loads(grades.read_text())
    assert sorted(record["labs"]) == list(LABS), result.stdout[-2000:]
    assert all(lab["not_started"] and lab["points"] == 0 for lab in record["labs"].values())
    assert {t["status"] for t in record["tests"]} == {NOT_STARTED}
    assert "0 / 14  not started" in result.stdout
    assert took < 30, f"took {took:.0f} s: nothing should have been built"


def test_a_tree_where_only_lab_01_is_done_grades_lab_01_alone(tree, tmp_path):
    """The exercises with lab 01's student files from solutions/: lab 01 is graded (here its build
    requirement only, to keep the test short), every other lab is "not started" and nothing of it runs."""
    for relative in STUDENT_FILES["01-docker"]:
        shutil.copy(ROOT / "solutions" / "01-docker" / relative, tree / "01-docker" / relative)
    grades = tmp_path / "grades.json"
    result = subprocess.run([sys.executable, "-m", "pytest", "tests/graded", "--target", str(tree), "--lab", "started",
                             "-k", "image_builds or not test_01", "--grades-json", str(grades), "-q",
                             "-p", "no:warnings"], cwd=ROOT, capture_output=True, text=True, timeout=900)
    record = json.loads(grades.read_text())
    ran = [t for t in record["tests"] if t["status"] != NOT_STARTED]
    assert [(t["lab"], t["passed"]) for t in ran] == [("01-docker", True)], result.stdout[-3000:]
    assert [lab for lab, got in record["labs"].items() if got["not_started"]] == list(LABS[1:])
