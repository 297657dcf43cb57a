"""labkit.submission: the graded tree is the course's given files plus the student's own, read safely;
labkit.grading: an engine failure is "could not grade", not the student's zero."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from docker.errors import APIError

from labkit.grading import engine_failure
from labkit.submission import (COURSE, MAX_FILE_BYTES, MAX_TOTAL_BYTES, STUDENT_FILES, Rejected, assemble,
                               given_files)
from labkit.testing import Feedback

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def submission(tmp_path) -> Path:
    """A copy of solutions/04-flask-serving to tamper with."""
    folder = tmp_path / "submitted" / "04-flask-serving"
    shutil.copytree(ROOT / "solutions" / "04-flask-serving", folder)
    return folder


def test_every_student_file_named_in_the_table_exists_in_the_exercises():
    for lab, files in STUDENT_FILES.items():
        assert all((COURSE / lab / f).is_file() for f in files), lab
        assert not set(files) & set(given_files(lab))


def test_the_student_files_come_from_the_submission_and_the_given_ones_from_the_course(submission, tmp_path):
    (submission / "train.py").write_text("print('a train.py the student rewrote')\n")
    (submission / "service" / "helpers.py").write_text("X = 1\n")
    assembled = assemble("04-flask-serving", submission, tmp_path / "graded")
    assert assembled.modified_given == ["train.py"] and "train.py" in assembled.notes()[0]
    assert (tmp_path / "graded" / "train.py").read_text() == (COURSE / "04-flask-serving" / "train.py").read_text()
    assert (tmp_path / "graded" / "service" / "app.py").read_text() == (submission / "service" / "app.py").read_text()
    assert assembled.extra == ["service/helpers.py"] and not assembled.missing


def test_a_missing_student_file_is_noted(submission, tmp_path):
    (submission / "service" / "cache.py").unlink()
    assembled = assemble("04-flask-serving", submission, tmp_path / "graded")
    assert assembled.missing == ["service/cache.py"]


@pytest.mark.parametrize("target", ["/etc/passwd", "../../outside.txt"])
def test_a_link_out_of_the_folder_is_rejected(submission, tmp_path, target):
    (tmp_path / "outside.txt").write_text("secret\n")
    os.symlink(target, submission / "service" / "notes.txt")
    with pytest.raises(Rejected, match="service/notes.txt is a symbolic link"):
        assemble("04-flask-serving", submission, tmp_path / "graded")


def test_a_link_inside_the_folder_is_copied_as_the_file_it_names(submission, tmp_path):
    (submission / "service" / "cache.py").rename(submission / "service" / "real_cache.py")
    os.symlink("real_cache.py", submission / "service" / "cache.py")
    assemble("04-flask-serving", submission, tmp_path / "graded")
    copied = tmp_path / "graded" / "service" / "cache.py"
    assert not copied.is_symlink() and copied.read_text() == (submission / "service" / "real_cache.py").read_text()


def test_a_linked_lab_folder_is_rejected(submission, tmp_path):
    os.symlink(submission, tmp_path / "linked")
    with pytest.raises(Rejected, match="symbolic link"):
        assemble("04-flask-serving", tmp_path / "linked", tmp_path / "graded")


def test_an_oversized_file_or_folder_is_rejected(submission, tmp_path):
    (submission / "big.bin").write_bytes(b"\0" * (MAX_FILE_BYTES + 1))
    with pytest.raises(Rejected, match="big.bin is 1.0 MiB"):
        assemble("04-flask-serving", submission, tmp_path / "graded")
    (submission / "big.bin").unlink()
    for number in range(MAX_TOTAL_BYTES // MAX_FILE_BYTES + 1):
        (submission / f"part{number}.bin").write_bytes(b"\0" * MAX_FILE_BYTES)
    with pytest.raises(Rejected, match="more than 20 MiB"):
        assemble("04-flask-serving", submission, tmp_path / "graded2")


def test_local_clutter_is_neither_copied_nor_counted(submission, tmp_path):
    (submission / ".venv").mkdir()
    (submission / ".venv" / "huge").write_bytes(b"\0" * (MAX_FILE_BYTES + 1))
    os.symlink("/usr/bin/python3", submission / ".venv" / "python")
    assemble("04-flask-serving", submission, tmp_path / "graded")
    assert not (tmp_path / "graded" / ".venv").exists()


@pytest.mark.parametrize("error, engine", [
    (Feedback("expected the image to build; the build failed: write /x: no space left on device"), True),
    (APIError("Cannot connect to the Docker daemon at unix:///var/run/docker.sock"), True),
    (Feedback("expected an HTTP answer from http://127.0.0.1:1/predict; the request failed: Connection refused"),
     False),
    (Feedback('expected HTTP 200 {"result": [0, 2]}; got HTTP 500'), False),
])
def test_engine_failures_are_told_apart_from_the_students(error, engine):
    assert engine_failure(error) is engine
