"""The Russian course is kept in step with the English one.

- every student-facing English document has a Russian twin (X.md -> X.ru.md), and each links the other
  first thing;
- per pair, what a translation must not change (headings, commands, inline code, links, numbers: see
  labkit/translations.py) is the same in both;
- notebooks/ru/ holds every notebook, with the English code cells and outputs (labkit/notebooks_ru.py);
- no Russian text uses a calque the glossary (week/glossary.md) lists.
A failure names the file and what differs: after changing an English text, change its twin the same way.
"""
from __future__ import annotations

import re

import pytest

from labkit import notebooks_ru
from labkit.translations import (ROOT, calques, english_documents, first_link, russian_documents, russian_twin,
                                 skeleton_differences)

PAIRS = [(english, russian_twin(english)) for english in english_documents()]


def relative(path):
    return str(path.relative_to(ROOT))


def test_the_student_path_is_covered():
    """The pairs cover the top README, every lab, exercise and solution README, the lectures and the errata."""
    names = {relative(english) for english, _ in PAIRS}
    assert {"README.md", "week/README.md", "week/errata.md"} <= names
    for folder in ("labs", "solutions", "exercises"):
        labs = {p.parent.name for p in (ROOT / folder).glob("*/README.md")}
        assert labs and {f"{folder}/{lab}/README.md" for lab in labs} <= names
    assert len([n for n in names if n.startswith("week/lectures/")]) == 5


@pytest.mark.parametrize("english, russian", PAIRS, ids=lambda p: relative(p))
def test_a_document_has_a_russian_twin_and_they_link_each_other_first(english, russian):
    """X.md's first link is to X.ru.md, and X.ru.md's first link is back to X.md."""
    assert russian.is_file(), f"{relative(english)} has no Russian twin {relative(russian)}"
    assert first_link(english.read_text()) == russian.name, (
        f"{relative(english)}: the first link must be [Русская версия]({russian.name})")
    assert first_link(russian.read_text()) == english.name, (
        f"{relative(russian)}: the first link must be [English version]({english.name})")


def test_every_russian_document_has_an_english_original():
    """No Russian text is orphaned (an English file renamed or removed without its twin)."""
    orphans = [relative(p) for p in russian_documents() if not p.with_name(p.name[:-len(".ru.md")] + ".md").is_file()]
    assert not orphans


@pytest.mark.parametrize("english, russian", [pair for pair in PAIRS if pair[1].is_file()],
                         ids=lambda p: relative(p))
def test_a_twin_keeps_the_commands_numbers_and_sections_of_its_original(english, russian):
    """Headings, code blocks, inline code, links and numbers are the same in the English and the Russian text."""
    problems = skeleton_differences(english.read_text(), russian.read_text())
    assert not problems, (f"{relative(english)} and {relative(russian)} are out of step (change the one that "
                          f"is behind):\n" + "\n".join(problems))


def test_the_skeleton_sees_a_changed_command_port_or_section():
    """The comparison is not blind: a changed command, number, heading or link is found; a translation is not."""
    english = ("# Run\n\nStart it on port 18009 ([notes](notes.md)), then `make grade`:\n\n"
               "```bash\nmake up    # build and start\n```\n\n```\n├── app.py   the service\n```\n")
    russian = ("# Запуск\n\nЗапустите на порту 18009 ([заметки](notes.ru.md)), затем `make grade`:\n\n"
               "```bash\nmake up    # собрать и запустить\n```\n\n```\n├── app.py   сервис\n```\n")
    assert skeleton_differences(english, russian) == []
    for old, new in [("make up ", "make down "), ("18009", "18010"), ("# Запуск", "## Запуск"),
                     ("`make grade`", "`make test`"), ("notes.ru.md", "other.ru.md")]:
        assert skeleton_differences(english, russian.replace(old, new)), f"{old} -> {new} went unnoticed"


def test_a_generated_requirements_table_is_left_out_of_the_comparison():
    """The requirements table comes from a catalogue per language: only its markers are compared."""
    table = "<!-- requirements:begin -->\n| requirement | points |\n|---|---|\n| builds | 12 |\n<!-- requirements:end -->\n"
    empty = "<!-- requirements:begin -->\n<!-- requirements:end -->\n"
    assert skeleton_differences("# A\n" + table, "# А\n" + empty) == []
    assert skeleton_differences("# A\n" + table, "# А\n")


@pytest.mark.parametrize("english, russian", notebooks_ru.notebook_pairs(), ids=lambda p: p.name)
def test_a_russian_notebook_has_the_english_code_and_outputs(english, russian):
    """notebooks/ru/X.ipynb: the same cells as notebooks/X.ipynb, code and outputs identical, markdown in Russian."""
    assert russian.is_file(), f"{relative(russian)} is missing: run 'labkit notebooks-ru', then translate it"
    problems = notebooks_ru.differences(notebooks_ru.read(english), notebooks_ru.read(russian))
    assert not problems, (f"{relative(russian)} is out of step with {relative(english)}; run 'labkit notebooks-ru' "
                          f"(copies code and outputs, keeps the Russian markdown), then translate what is new:\n"
                          + "\n".join(problems))


def test_refreshing_a_russian_notebook_keeps_its_russian_markdown_and_takes_the_english_code():
    """`labkit notebooks-ru` after an English edit: new code and outputs copied, Russian text kept, new text flagged."""
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

    english = new_notebook(cells=[new_markdown_cell("# Run it", id="a"), new_code_cell("print(1)", id="b")])
    russian = notebooks_ru.synced(english)
    russian.cells[0].source = "# Запуск"
    assert notebooks_ru.differences(english, russian) == []

    english.cells[1].source = "print(2)"
    english.cells[1].outputs = [new_output("stream", name="stdout", text="2\n")]
    english.cells.append(new_markdown_cell("## Clean up", id="c"))
    assert len(notebooks_ru.differences(english, russian)) == 1  # the cells differ
    refreshed = notebooks_ru.synced(english, russian)
    assert refreshed.cells[0].source == "# Запуск" and refreshed.cells[1] == english.cells[1]
    assert notebooks_ru.differences(english, refreshed) == [
        "cell 3 (id c, markdown): not translated yet: '## Clean up'"]


def russian_texts():
    for path in russian_documents():
        yield relative(path), path.read_text()
    for _, path in notebooks_ru.notebook_pairs():
        if path.is_file():
            cells = notebooks_ru.read(path).cells
            yield relative(path), "\n".join(c.source for c in cells if c.cell_type == "markdown")


def test_the_glossary_lists_calques():
    assert len(calques()) >= 3


def test_no_russian_text_uses_a_calque_of_the_glossary():
    """The calques week/glossary.md lists ("проверка входа" for input validation, ...) appear nowhere."""
    found = [f"{name}: «{bad}» (пишем: {good})" for name, text in russian_texts()
             for bad, good in calques() if re.search(re.escape(bad), text, re.IGNORECASE)]
    assert not found, "\n".join(found)
