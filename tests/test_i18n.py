"""The grader in Russian: one catalogue (labkit/i18n/ru.yaml) covers every graded test and the feedback's frame."""
from __future__ import annotations

import pytest

from labkit import i18n
from labkit.requirements import collect


def test_every_graded_test_has_a_russian_requirement_with_the_same_numbers():
    """A new or renamed graded test needs its line in labkit/i18n/ru.yaml; a changed threshold, its new number."""
    problems = i18n.problems(collect(), "ru")
    assert not problems, "labkit/i18n/ru.yaml is behind tests/graded:\n  " + "\n  ".join(problems)


def test_the_catalogue_names_no_test_that_is_gone():
    graded = {(r.lab, r.test) for r in collect()}
    listed = {(lab, test) for lab, tests in i18n.catalogue("ru")["requirements"].items() for test in tests}
    assert sorted(listed - graded) == []


@pytest.mark.parametrize("environ, lang", [
    ({"LABKIT_LANG": "ru"}, "ru"),
    ({"LANG": "ru_RU.UTF-8"}, "ru"),
    ({"LC_ALL": "ru_UA.UTF-8", "LANG": "en_US.UTF-8"}, "ru"),
    ({"LABKIT_LANG": "en", "LANG": "ru_RU.UTF-8"}, "en"),
    ({"LANG": "de_DE.UTF-8"}, "en"),
    ({}, "en"),
])
def test_the_language_is_labkit_lang_else_the_locale(environ, lang):
    assert i18n.language(environ) == lang


def test_feedback_keeps_its_facts_and_translates_its_frame():
    english = ("expected a non-root user (uid other than 0); got uid 0: add a USER line\n"
               "  last container log lines:\n    Listening at: http://0.0.0.0:8000")
    assert i18n.feedback(english, "ru") == (
        "ожидалось: пользователь без прав root (uid не 0); получено: uid 0: добавьте строку USER\n"
        "  последние строки лога контейнера:\n    Listening at: http://0.0.0.0:8000")
    assert i18n.feedback(english, "en") == english


def test_numbers_compare_across_decimal_commas_and_thousands_separators():
    assert i18n.numbers("< 0.5 s, ~1,000 rows, [0, 2]") == i18n.numbers("< 0,5 с, ~1 000 строк, [0, 2]")
    assert i18n.numbers("within 5 s") != i18n.numbers("за 3 с")


def test_a_parametrized_requirement_names_its_case_in_both_languages():
    nodeid = "tests/graded/test_04_flask_serving.py::test_a_down_cache_is_bypassed_quickly[redis]"
    assert i18n.requirement("04-flask-serving", nodeid, "With the cache ...", "en") == "With the cache ... [redis]"
    russian = i18n.requirement("04-flask-serving", nodeid, "With the cache ...", "ru")
    assert russian.endswith("[redis]") and russian.removesuffix(" [redis]") == i18n.translated_requirement(
        "04-flask-serving", "test_a_down_cache_is_bypassed_quickly", "ru").strip()
    assert i18n.requirement("04-flask-serving", nodeid, "Bypassed. [redis]", "en") == "Bypassed. [redis]"


def test_every_frame_word_of_the_table_is_translated():
    words = i18n.catalogue("ru")["words"]
    assert {"PASS", "FAIL", "not started", "TOTAL", "expected", "got", "requirement", "points", "total"} <= set(words)


def test_labkit_lang_ru_grades_lab_01_in_russian(tmp_path):
    """`LABKIT_LANG=ru make grade LAB=01` on the stubs: Russian requirements, frame words and feedback; the
    record keeps its English keys and adds the Russian lines beside them."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    grades = tmp_path / "grades.json"
    result = subprocess.run([sys.executable, "-m", "pytest", "tests/graded", "--lab", "01", "--grades-json", str(grades),
                             "-q", "-rN", "-p", "no:warnings"], cwd=root, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "LABKIT_LANG": "ru"})
    assert "ИТОГО: 0 / 14" in result.stdout, result.stdout[-3000:]
    assert "не зачтено" in result.stdout and "Образ собирается из Dockerfile." in result.stdout
    assert "-> ожидалось: " in result.stdout
    record = json.loads(grades.read_text())
    assert record["lang"] == "ru" and {"requirement", "feedback", "requirement_ru", "feedback_ru"} <= set(record["tests"][0])
    first = record["tests"][0]
    assert first["requirement_ru"] == "Образ собирается из Dockerfile." != first["requirement"]
