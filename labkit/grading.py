"""The grader, as a pytest plugin (loaded by pyproject's addopts).

- `--target exercises|solutions|PATH` picks the tree of `NN-topic/` folders to grade.
- `--lab 01,04` grades those labs only; `--lab started` those whose student files differ from the
  released stubs, the others listed as "not started" (0 points) without running anything.
- A graded test carries `@pytest.mark.points(n)` and its module `pytest.mark.lab("NN-topic")`;
  the first line of its docstring is the requirement.
- A failing graded test reports its feedback message, never a traceback.
- After the run: a table per lab on the terminal, `grades.json`, and Gradescope's `results.json`;
  in Russian with `LABKIT_LANG=ru` or a Russian locale (labkit.i18n).
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

from labkit import i18n, progress

# testcontainers reads these when it is imported: no Ryuk image exists offline, and a /.dockerenv
# must not make it dial the bridge gateway instead of the ports published on loopback.
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
os.environ.setdefault("TESTCONTAINERS_HOST_OVERRIDE", "localhost")
# Inside a container (dev container, CI job) reach lab containers on the ports they publish, as on a host.
os.environ.setdefault("TESTCONTAINERS_CONNECTION_MODE", "docker_host")

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
    # "pass", "fail", "could not grade" (the engine failed, not the student), or "not started"
    # (labkit.progress: the lab's files are still the stubs, its tests did not run).
    status: str = ""


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("labkit grading")
    group.addoption("--target", default=os.environ.get("TARGET", "exercises"),
                    help="tree to grade: exercises (default), solutions, or a path holding NN-topic/ folders")
    group.addoption("--grades-json", default="grades.json", help="where to write the grades (default grades.json)")
    group.addoption("--lab", default="all", help="labs to grade: all (default), started (the others are "
                    "'not started'), or a list such as 01,04 or 01-docker")


def resolve_target(value: str) -> Path:
    return TARGETS.get(value, Path(value).expanduser().resolve())


def pytest_configure(config: pytest.Config) -> None:
    config.labkit_outcomes = []  # type: ignore[attr-defined]
    config.labkit_notes = {}  # type: ignore[attr-defined]
    # SIGTERM (CI time-outs, `kill`) takes the same path as Ctrl-C, so fixtures clean up.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))


@pytest.hookimpl(trylast=True)  # after -k and -m: a lab reported "not started" lists only the selected tests
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """--lab: run the graded tests of the labs asked for; a lab not started is reported, not run."""
    try:
        plan = progress.planner(config.getoption("--lab"), resolve_target(config.getoption("--target")))
    except progress.UnknownLab as error:
        raise pytest.UsageError(str(error)) from None
    keep, drop = [], []
    for item in items:
        lab, points = item.get_closest_marker("lab"), item.get_closest_marker("points")
        verdict = plan(lab.args[0]) if lab and points else progress.GRADE
        (keep if verdict == progress.GRADE else drop).append(item)
        if verdict == progress.NOT_STARTED:
            config.labkit_outcomes.append(Outcome(
                lab=lab.args[0], test=item.nodeid, requirement=requirement_of(item), points=0.0,
                max_points=float(points.args[0]), passed=False, feedback=progress.NOT_STARTED,
                status=progress.NOT_STARTED))
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


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
    if report.failed:  # pytest's own failure section, in the student's language like the table
        lang = i18n.language()
        lab = lab_marker.args[0] if lab_marker else "?"
        requirement = i18n.requirement(lab, item.nodeid, requirement_of(item), lang)
        report.longrepr = f"[{requirement}]\n{i18n.feedback(feedback, lang)}"
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
    lang = i18n.language()
    say = i18n.sayer(lang)  # the table's words in the student's language
    width = max(len(say("PASS")), len(say("FAIL")))
    write = terminalreporter.write_line
    target = config.getoption("--target")
    terminalreporter.section(f"{say('grades for target')} {target}")
    for lab in sorted({o.lab for o in outcomes}):
        rows = [o for o in outcomes if o.lab == lab]
        got, out_of = sum(o.points for o in rows), sum(o.max_points for o in rows)
        if all(o.status == progress.NOT_STARTED for o in rows):
            write(f"{lab}: {got:g} / {out_of:g}  {say('not started')}")
            continue
        write(f"{lab}: {got:g} / {out_of:g}")
        for note in config.labkit_notes.get(lab, []):
            write(f"  {say('note')}: {note}")
        for o in rows:
            mark = say({"pass": "PASS", "could not grade": "N/A"}.get(o.status, "PASS" if o.passed else "FAIL"))
            requirement = i18n.requirement(o.lab, o.test, o.requirement, lang)
            write(f"  {mark:<{width}}  {o.points:>3g}/{o.max_points:<3g} {one_line(requirement, 90)}")
            if not o.passed:
                write(f"        -> {one_line(i18n.feedback(o.feedback, lang), 110)}")
    total, out_of = sum(o.points for o in outcomes), sum(o.max_points for o in outcomes)
    write(f"{say('TOTAL')}: {total:g} / {out_of:g} ({100 * total / out_of:.0f} %)")
    if any(o.status == progress.NOT_STARTED for o in outcomes):
        write(say("not started: your files are still the released stubs; grade such a lab anyway with "
                  "make grade LAB=NN"))
    ungraded = sum(o.status == "could not grade" for o in outcomes)
    if ungraded:
        write(f"COULD NOT GRADE {ungraded} requirement(s): the Docker engine failed; fix it and grade again")
    path = Path(config.getoption("--grades-json"))
    write_grades(path, target, outcomes, config.labkit_notes, lang)
    write(f"{say('grades written to')} {path} {say('and')} {path.with_name('results.json')}")


def write_grades(path: Path, target: str, outcomes: list[Outcome], notes: dict | None = None,
                 lang: str = i18n.ENGLISH) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    labs = {}
    for o in outcomes:
        lab = labs.setdefault(o.lab, {"points": 0.0, "max_points": 0.0, "could_not_grade": 0, "not_started": True,
                                      "notes": (notes or {}).get(o.lab, [])})
        lab["points"] += o.points
        lab["max_points"] += o.max_points
        lab["could_not_grade"] += o.status == "could not grade"
        lab["not_started"] &= o.status == progress.NOT_STARTED
    total = sum(o.points for o in outcomes)
    out_of = sum(o.max_points for o in outcomes)
    # The English record stays as it is; another language adds its lines beside it.
    local = [{"requirement": i18n.requirement(o.lab, o.test, o.requirement, lang),
              "feedback": i18n.feedback(o.feedback, lang)} for o in outcomes]
    tests = [asdict(o) | ({f"{key}_{lang}": value for key, value in line.items()} if lang != i18n.ENGLISH else {})
             for o, line in zip(outcomes, local)]
    path.write_text(json.dumps({
        "target": target,
        "lang": lang,
        "points": total,
        "max_points": out_of,
        "labs": labs,
        "tests": tests,
    }, indent=2, ensure_ascii=False) + "\n")
    # Gradescope's autograder format, for courses that upload there (in the student's language).
    path.with_name("results.json").write_text(json.dumps({
        "score": total,
        "tests": [{"name": f"{o.lab}: {line['requirement']}", "score": o.points, "max_score": o.max_points,
                   "output": line["feedback"]} for o, line in zip(outcomes, local)],
    }, indent=2, ensure_ascii=False) + "\n")
