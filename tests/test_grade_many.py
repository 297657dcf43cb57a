"""`labkit grade-many`: a class of three submissions (complete, untouched stubs, half done) graded on
lab 01, two at a time (its timing test left out), gives 100 %, 0 % and the exact partial score, with feedback per student."""
from __future__ import annotations

import csv
import json
import shutil

import pytest

from labkit import grade_many as gm

ROOT = gm.ROOT
LAB = "01-docker"


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory):
    """Three submissions of lab 01 graded by grade_many with two jobs: (results, out_dir)."""
    class_dir = tmp_path_factory.mktemp("class") / "submissions"
    # ada: the reference solution. bob: the untouched stubs.
    shutil.copytree(ROOT / "solutions" / LAB, class_dir / "ada" / LAB)
    shutil.copytree(ROOT / "exercises" / LAB, class_dir / "bob" / LAB)
    # cy: a clone of the repository (found through its exercises/), Dockerfile done, .dockerignore still the stub.
    cy = class_dir / "cy" / "exercises" / LAB
    shutil.copytree(ROOT / "solutions" / LAB, cy)
    shutil.copy(ROOT / "exercises" / LAB / ".dockerignore", cy / ".dockerignore")
    out_dir = class_dir.with_name("out")
    # Without the SIGTERM timing test: on a machine loaded by parallel builds, `docker stop` itself can
    # take seconds, and this test is about grade-many's bookkeeping, not lab 01's thresholds.
    results = gm.grade_many(class_dir, out_dir, jobs=2, labs=[LAB], pytest_args=["-k", "not sigterm"])
    return {r.student: r for r in results}, out_dir


def dockerignore_points(grades: dict) -> float:
    [test] = [t for t in grades["tests"] if "dockerignore" in t["test"]]
    return test["max_points"]


def test_every_submission_is_graded(graded_class):
    """Every student folder gets a grading run that wrote grades."""
    results, _ = graded_class
    assert sorted(results) == ["ada", "bob", "cy"]
    for student, r in results.items():
        assert r.grades is not None, f"{student}: {r.error}"


def test_the_csv_gives_100_0_and_the_partial_score(graded_class):
    """grades.csv: the solutions 100 %, the stubs 0 %, the half-done submission loses exactly .dockerignore's points."""
    results, out_dir = graded_class
    with open(out_dir / "grades.csv", newline="") as handle:
        rows = {row["student"]: row for row in csv.DictReader(handle)}
    assert list(rows) == ["ada", "bob", "cy"]
    full = float(rows["ada"]["max"])
    assert full > 0 and rows["ada"]["percent"] == "100", results["ada"].grades["tests"]
    assert rows["ada"][LAB] == rows["ada"]["total"] == f"{full:g}"
    assert rows["bob"]["total"] == "0" and rows["bob"]["percent"] == "0"
    lost = dockerignore_points(results["ada"].grades)
    assert float(rows["cy"]["total"]) == full - lost, results["cy"].grades["tests"]
    assert rows["cy"]["percent"] == f"{round(100 * (full - lost) / full, 1):g}"
    assert all(row["error"] == "" for row in rows.values())


def test_each_student_gets_a_feedback_file_naming_what_failed(graded_class):
    """<student>.txt lists every requirement with points; the failures carry the grader's feedback."""
    results, out_dir = graded_class
    cy = (out_dir / "cy.txt").read_text()
    failed = [line for line in cy.splitlines() if line.strip().startswith("FAIL")]
    assert len(failed) == 1 and ".dockerignore" in failed[0], cy
    assert "would be sent to the Docker daemon" in cy  # the grader's feedback, not a traceback
    bob = (out_dir / "bob.txt").read_text()
    assert "PASS" not in bob and bob.count("FAIL") == len(results["bob"].grades["tests"])
    assert "TOTAL: 0 /" in bob and "Traceback" not in bob


def test_each_student_gets_a_gradescope_results_json(graded_class):
    """<student>.results.json is Gradescope's format with every requirement of the student."""
    results, out_dir = graded_class
    for student, r in results.items():
        data = json.loads((out_dir / f"{student}.results.json").read_text())
        assert data["score"] == r.points
        assert len(data["tests"]) == len(r.grades["tests"])
        assert {"name", "score", "max_score", "output"} <= set(data["tests"][0])


def test_parallel_runs_kept_their_own_records(graded_class):
    """Each run wrote its own grades.json for its own target (no run overwrote another's)."""
    results, out_dir = graded_class
    for student, r in results.items():
        grades = json.loads((out_dir / student / "grades.json").read_text())
        assert grades["target"] == str(r.target)
    assert results["cy"].target.name == "exercises"


# --- without Docker ----------------------------------------------------------------------------

def test_submissions_are_found_directly_in_a_clone_or_in_an_archive_folder(tmp_path):
    """A submission's NN-topic/ folders are found at its top, in exercises/, or under one archive folder."""
    for folder in ("direct/01-docker", "clone/exercises/01-docker", "clone/solutions/01-docker",
                   "archive/week-main/exercises/01-docker", "empty/notes"):
        (tmp_path / "class" / folder).mkdir(parents=True)
    (tmp_path / "class" / ".hidden").mkdir()
    found = dict(gm.find_submissions(tmp_path / "class"))
    base = tmp_path / "class"
    assert found == {"archive": base / "archive/week-main/exercises", "clone": base / "clone/exercises",
                     "direct": base / "direct", "empty": base / "empty"}


def test_a_lab_filter_selects_that_labs_graded_module():
    """--labs 01-docker (or 01) runs tests/graded/test_01_*.py only; an unknown lab is an error."""
    assert gm.graded_files(["01-docker"]) == [str(ROOT / "tests/graded/test_01_docker.py")]
    assert gm.graded_files(["01"]) == gm.graded_files(["01-docker"])
    assert gm.graded_files(None) == [str(ROOT / "tests/graded")]
    with pytest.raises(ValueError, match="no graded tests"):
        gm.graded_files(["99-nothing"])


def test_a_run_that_could_not_grade_is_reported_not_scored_zero(tmp_path):
    """A submission whose run wrote no grades gets an error in the CSV and its feedback file."""
    ok = gm.Result("ada", tmp_path, grades={"labs": {}, "tests": []},
                   labs={"01-docker": {"points": 7.0, "max_points": 14.0}})
    broken = gm.Result("bob", tmp_path, error="pytest exited with code 3")
    gm.write_results(tmp_path, [ok, broken])
    rows = list(csv.reader(open(tmp_path / "grades.csv", newline="")))
    assert rows == [["student", "01-docker", "total", "max", "percent", "error"],
                    ["ada", "7", "7", "14", "50", ""],
                    ["bob", "", "", "", "", "pytest exited with code 3"]]
    assert "NOT GRADED: pytest exited with code 3" in (tmp_path / "bob.txt").read_text()


def test_the_command_line_rejects_a_missing_folder(tmp_path, capsys):
    """`labkit grade-many` on a folder that does not exist exits 2 with a one-line reason."""
    assert gm.main([str(tmp_path / "nope")]) == 2
    assert "is not a folder" in capsys.readouterr().err
