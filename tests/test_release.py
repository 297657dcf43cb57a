"""labkit release: solution regions become TODO stubs; broken markers are errors."""
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
