"""The graded requirements come from one source: the exercise READMEs and week plans hold what the graded
tests state, in English and in Russian, and `labkit release --check` catches a stale table."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from labkit import documents, i18n
from labkit.release import release_documents
from labkit.requirements import Requirement, collect, totals

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def rows() -> list[Requirement]:
    """The graded requirements as pytest collects them (a subprocess, no Docker)."""
    return collect()


def test_collection_sees_every_graded_item_parametrized_ones_included(rows):
    assert [r.param for r in rows if r.test == "test_a_down_cache_is_bypassed_quickly"] == ["memcached", "redis"]
    assert totals(rows)["04-flask-serving"] == 24  # 22 by the decorators alone: the parametrized test counts twice
    assert all(r.text and r.points > 0 for r in rows)


def test_the_committed_documents_are_what_release_writes():
    """`labkit release --check` finds every generated table up to date (run `make release` if not)."""
    assert release_documents(check=True) == []


@pytest.mark.parametrize("plan", ["week/README.md", "week/README.ru.md"])
def test_the_week_plan_states_the_points_the_grader_counts(plan, rows):
    stated = {}
    for line in (ROOT / plan).read_text().splitlines():
        match = re.match(r"^\|.*`exercises/(\d\d-[a-z0-9-]+)/`.*\|\s*(\d+)\s*\|\s*$", line)
        if match:
            stated[match[1]] = float(match[2])
    assert stated == totals(rows)


@pytest.mark.parametrize("readme", sorted(p.relative_to(ROOT).as_posix() for p in ROOT.glob("exercises/*/README.md")))
def test_every_exercise_readme_lists_its_labs_requirements(readme, rows):
    text = (ROOT / readme).read_text()
    lab = Path(readme).parent.name
    for r in (r for r in rows if r.lab == lab):
        assert documents.escape(r.text) in text, f"{readme} lacks: {r.text}"
    assert f"| **total** | **{totals(rows)[lab]:g}** |" in text


@pytest.fixture
def copy_of_docs(tmp_path):
    """The documents with generated blocks, copied to a scratch root."""
    for relative in documents.documents(ROOT):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / relative, tmp_path / relative)
    return tmp_path


def test_a_stale_table_or_a_lost_block_is_caught_and_release_fixes_the_table(copy_of_docs, rows):
    readme = copy_of_docs / "solutions" / "04-flask-serving" / "README.md"
    readme.write_text(readme.read_text().replace("| **24** |", "| **22** |"))
    plan = copy_of_docs / "week" / "README.md"
    plan.write_text(plan.read_text().replace("<!-- points:begin -->", ""))
    assert documents.sync(copy_of_docs, rows, write=False) == [
        "solutions/04-flask-serving/README.md: the generated requirements/points are stale",
        "week/README.md: no <!-- points:begin --> block"]
    documents.sync(copy_of_docs, rows, write=True)
    assert "| **24** |" in readme.read_text()


def test_a_hand_written_points_cell_is_rewritten_for_the_row_naming_the_lab():
    table = "| lab | points |\n|---|---|\n| `exercises/04-flask-serving/` | 22 |\n| — | — |"
    assert documents.with_points(table, {"04-flask-serving": 24.0}).splitlines()[2:] == [
        "| `exercises/04-flask-serving/` | 24 |", "| — | — |"]


def test_a_requirement_cell_escapes_pipes_and_tags_but_not_code():
    assert documents.escape("GET /tasks/<id> | x < 0.5 s `a|<b>`") == r"GET /tasks/\<id> \| x < 0.5 s `a|<b>`"


def test_the_russian_tables_come_from_the_catalogue(rows):
    plan = (ROOT / "week" / "README.ru.md").read_text()
    for r in rows:
        line = i18n.translated_requirement(r.lab, r.test, "ru")
        assert line and documents.escape(line.strip()) in plan, r.test
