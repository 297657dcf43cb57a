"""labkit release: solution regions become TODO stubs; broken markers are errors."""
import shutil

import pytest

from labkit.release import MarkerError, differences, generate, stub_text


def test_a_region_becomes_its_todo_lines():
    text = "FROM x\n# BEGIN SOLUTION\n# TODO: write the CMD\nCMD [\"run\"]\n# END SOLUTION\n"
    assert stub_text(text) == "FROM x\n# TODO: write the CMD\n"


def test_an_indented_python_region_raises_not_implemented():
    text = "def f():\n    # BEGIN SOLUTION\n    # TODO: return 1\n    return 1\n    # END SOLUTION\n"
    assert stub_text(text, python=True) == (
        'def f():\n    # TODO: return 1\n    raise NotImplementedError("TODO: see the comment above")\n')


@pytest.mark.parametrize("text, problem", [
    ("# BEGIN SOLUTION\n# TODO x\n", "never closed"),
    ("# END SOLUTION\n", "without a"),
    ("# BEGIN SOLUTION\n# TODO x\n# BEGIN SOLUTION\n# END SOLUTION\n", "nested"),
    ("# BEGIN SOLUTION\nsecret\n# END SOLUTION\n", "TODO"),
])
def test_broken_markers_are_errors(text, problem):
    with pytest.raises(MarkerError, match=problem):
        stub_text(text, "f")


def test_the_committed_exercises_are_what_release_makes(tmp_path):
    from labkit.release import EXERCISES, SOLUTIONS

    generate(SOLUTIONS, tmp_path / "exercises")
    assert differences(tmp_path / "exercises", EXERCISES) == []


def test_every_lab_installs_the_same_service_requirements():
    """One pinned requirements.txt for every Python lab: their first layers share the build cache."""
    from labkit.release import ROOT

    files = sorted(ROOT.glob("*/[0-9][0-9]-*/**/requirements.txt"))
    assert files
    assert len({f.read_text() for f in files}) == 1, [str(f.relative_to(ROOT)) for f in files]


def test_the_committed_requirements_files_are_what_the_lock_makes():
    from labkit.lock import sync

    assert sync(check=True) == []


def test_release_check_fails_when_a_labs_requirements_differ_from_the_lock(tmp_path, monkeypatch, capsys):
    """A hand-edited pin in one lab (here an older Celery) is caught, and the file is named."""
    from labkit import lock
    from labkit.release import release

    for name in ["pyproject.toml", "uv.lock", "labkit/locked", *(str(p.relative_to(lock.ROOT))
                                                                for p in lock.lab_requirements())]:
        source, copy = lock.ROOT / name, tmp_path / name
        copy.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if source.is_dir() else shutil.copy)(source, copy)
    monkeypatch.setattr(lock, "ROOT", tmp_path)
    edited = tmp_path / "solutions" / "05-celery" / "requirements.txt"
    pinned = edited.read_text()
    assert "\ncelery==5." in pinned
    edited.write_text(pinned.replace("\ncelery==5.", "\ncelery==4.", 1))

    assert release(check=True) == 1
    assert "solutions/05-celery/requirements.txt" in capsys.readouterr().out
    assert edited.read_text() != pinned  # --check only reports


def test_the_shared_given_modules_are_copies_of_their_source():
    from labkit.release import release_shared_copies

    assert release_shared_copies(check=True) == []


def test_release_check_names_a_shared_copy_edited_by_hand(tmp_path, monkeypatch):
    from labkit import release as release_module

    (tmp_path / "source.py").write_text("ONE = 1\n")
    (tmp_path / "copy.py").write_text("ONE = 2\n")
    monkeypatch.setattr(release_module, "ROOT", tmp_path)
    monkeypatch.setattr(release_module, "SHARED_COPIES", {"copy.py": "source.py"})

    assert release_module.release_shared_copies(check=True) == [
        "copy.py is not a copy of source.py; edit the source and run 'make release'"]
    assert (tmp_path / "copy.py").read_text() == "ONE = 2\n"  # --check only reports
    assert release_module.release_shared_copies(check=False) == []
    assert (tmp_path / "copy.py").read_text() == "ONE = 1\n"
