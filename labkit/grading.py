"""The grader, as a pytest plugin (loaded by pyproject's addopts).

- `--target exercises|solutions|PATH` picks the tree of `NN-topic/` folders to grade.
- A graded test carries `@pytest.mark.points(n)` and its module `pytest.mark.lab("NN-topic")`;
  the first line of its docstring is the requirement.
- A failing graded test reports its feedback message, never a traceback.
- After the run: a table per lab on the terminal, `grades.json`, and Gradescope's `results.json`.
- Every Docker object the run labelled is removed at the end, also on failure or interrupt.
"""
from __future__ import annotations

import json
import os
import re
import signal
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest

# testcontainers reads these when it is imported: no Ryuk image exists offline, and a /.dockerenv
# must not make it dial the bridge gateway instead of the ports published on loopback.
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
os.environ.setdefault("TESTCONTAINERS_HOST_OVERRIDE", "localhost")

ROOT = Path(__file__).resolve().parent.parent
TARGETS = {"exercises": ROOT / "exercises", "solutions": ROOT / "solutions"}


@dataclass
class Outcome:
    lab: str
    test: str
    requirement: str
    points: float
    max_points: float
    passed: bool
    feedback: str
    # "pass", "fail", or "could not grade": the engine failed (daemon gone, disk full), not the student.
    status: str = ""


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("labkit grading")
    group.addoption("--target", default=os.environ.get("TARGET", "exercises"),
                    help="tree to grade: exercises (default), solutions, or a path holding NN-topic/ folders")
    group.addoption("--grades-json", default="grades.json", help="where to write the grades (default grades.json)")


def resolve_target(value: str) -> Path:
    return TARGETS.get(value, Path(value).expanduser().resolve())


def pytest_configure(config: pytest.Config) -> None:
    config.labkit_outcomes = []  # type: ignore[attr-defined]
    config.labkit_notes = {}  # type: ignore[attr-defined]
    # SIGTERM (CI time-outs, `kill`) takes the same path as Ctrl-C, so fixtures clean up.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))


def record_notes(config: pytest.Config, lab: str, notes: list[str]) -> None:
    """Notes about a lab's graded tree (e.g. given files the submission modified), for the report."""
    known = config.labkit_notes.setdefault(lab, [])  # type: ignore[attr-defined]
    known.extend(n for n in notes if n not in known)


# The engine, not the submission, failed: these are never the student's zero.
ENGINE_FAILURE = re.compile(r"no space left on device|cannot connect to the docker daemon|is the docker daemon "
                            r"running|error while fetching server api version|unixhttpconnectionpool|"
                            r"docker\.sock|read-only file system.*(/var/lib/docker|overlay)", re.IGNORECASE)


def engine_failure(error: BaseException | None) -> bool:
    """Whether a test failed because the Docker engine failed (daemon gone, disk full)."""
    return error is not None and bool(ENGINE_FAILURE.search(f"{type(error).__name__}: {error}"))


def requirement_of(item: pytest.Item) -> str:
    doc = (getattr(item.obj, "__doc__", None) or item.name).strip()
    variant = getattr(item, "callspec", None)  # a parametrized check: which case, e.g. [redis]
    return doc.splitlines()[0] + (f" [{variant.id}]" if variant else "")


def feedback_of(call: pytest.CallInfo) -> str:
    error = call.excinfo.value if call.excinfo else None
    if error is None:
        return ""
    if isinstance(error, AssertionError):
        text = str(error).split("\nassert ")[0].strip()  # drop pytest's assertion rewrite
        return text or "the check failed"
    if isinstance(error, pytest.fail.Exception):
        return str(error.msg)
    return f"{type(error).__name__}: {error}".strip()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    marker = item.get_closest_marker("points")
    if marker is None or report.when not in ("setup", "call"):
        return
    if report.when == "setup" and report.passed:
        return
    lab_marker = item.get_closest_marker("lab")
    max_points = float(marker.args[0])
    feedback = "" if report.passed else feedback_of(call)
    status = "pass" if report.passed else "fail"
    if report.failed and engine_failure(call.excinfo.value if call.excinfo else None):
        status, feedback = "could not grade", f"could not grade (the Docker engine failed, rerun): {feedback}"
    if report.failed:
        report.longrepr = f"[{requirement_of(item)}]\n{feedback}"
    item.config.labkit_outcomes.append(Outcome(
        lab=lab_marker.args[0] if lab_marker else "?",
        test=item.nodeid,
        requirement=requirement_of(item),
        points=max_points if report.passed else 0.0,
        max_points=max_points,
        passed=report.passed,
        feedback=feedback,
        status=status,
    ))


def one_line(text: str, width: int = 90) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= width else line[: width - 1] + "…"


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    outcomes: list[Outcome] = config.labkit_outcomes
    if not outcomes:
        return
    write = terminalreporter.write_line
    target = config.getoption("--target")
    terminalreporter.section(f"grades for target {target}")
    for lab in sorted({o.lab for o in outcomes}):
        rows = [o for o in outcomes if o.lab == lab]
        got, out_of = sum(o.points for o in rows), sum(o.max_points for o in rows)
        write(f"{lab}: {got:g} / {out_of:g}")
        for note in config.labkit_notes.get(lab, []):
            write(f"  note: {note}")
        for o in rows:
            mark = {"pass": "PASS", "could not grade": "N/A "}.get(o.status, "FAIL")
            write(f"  {mark}  {o.points:>3g}/{o.max_points:<3g} {one_line(o.requirement, 70)}")
            if not o.passed:
                write(f"        -> {one_line(o.feedback, 110)}")
    total, out_of = sum(o.points for o in outcomes), sum(o.max_points for o in outcomes)
    write(f"TOTAL: {total:g} / {out_of:g} ({100 * total / out_of:.0f} %)")
    ungraded = sum(o.status == "could not grade" for o in outcomes)
    if ungraded:
        write(f"COULD NOT GRADE {ungraded} requirement(s): the Docker engine failed; fix it and grade again")
    path = Path(config.getoption("--grades-json"))
    write_grades(path, target, outcomes, config.labkit_notes)
    write(f"grades written to {path} and {path.with_name('results.json')}")


def write_grades(path: Path, target: str, outcomes: list[Outcome], notes: dict | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    labs = {}
    for o in outcomes:
        lab = labs.setdefault(o.lab, {"points": 0.0, "max_points": 0.0, "could_not_grade": 0,
                                      "notes": (notes or {}).get(o.lab, [])})
        lab["points"] += o.points
        lab["max_points"] += o.max_points
        lab["could_not_grade"] += o.status == "could not grade"
    total = sum(o.points for o in outcomes)
    out_of = sum(o.max_points for o in outcomes)
    path.write_text(json.dumps({
        "target": target,
        "points": total,
        "max_points": out_of,
        "labs": labs,
        "tests": [asdict(o) for o in outcomes],
    }, indent=2) + "\n")
    # Gradescope's autograder format, for courses that upload there.
    path.with_name("results.json").write_text(json.dumps({
        "score": total,
        "tests": [{"name": f"{o.lab}: {o.requirement}", "score": o.points, "max_score": o.max_points,
                   "output": o.feedback} for o in outcomes],
    }, indent=2) + "\n")
