"""Checks on a grades.json: the honesty of the grader in `make test` (solutions 100 %, stubs 0)."""
from __future__ import annotations

import json
from pathlib import Path


def load(path: str) -> dict:
    return json.loads(Path(path).read_text())


def check_grades(path: str, expect: str, same_tests_as: str | None = None) -> int:
    grades = load(path)
    tests = grades["tests"]
    problems: list[str] = []
    if not tests:
        problems.append("no graded test ran")
    for test in tests:
        if expect == "full" and not test["passed"]:
            problems.append(f"should pass: {test['test']}\n      {test['feedback'][:300]}")
        if expect == "zero" and test["points"]:
            problems.append(f"a stub scores points: {test['test']}")
    if same_tests_as:
        ours = {t["test"] for t in tests}
        theirs = {t["test"] for t in load(same_tests_as)["tests"]}
        problems += [f"graded in {same_tests_as} but not here: {name}" for name in sorted(theirs - ours)]
        problems += [f"graded here but not in {same_tests_as}: {name}" for name in sorted(ours - theirs)]
    label = {"full": "full marks", "zero": "zero"}[expect]
    if problems:
        print(f"{path}: expected {label}, but")
        for problem in problems:
            print(f"  - {problem}")
        return 1
    print(f"{path}: {len(tests)} graded tests, {grades['points']:g}/{grades['max_points']:g} points, {label} as expected")
    return 0
