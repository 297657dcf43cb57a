"""`labkit grade-many DIR`: grade a whole class, one submission folder per student.

DIR holds one folder per student (its name is the student's name in the results). A submission
folder holds the `NN-topic/` folders, like `exercises/`; a folder that holds them one level down
(a clone of this repository: `exercises/NN-topic/`, or an unpacked archive with one top folder) is
found too.

Each submission is graded by its own `pytest tests/graded --target SUBMISSION` process, one at a
time or `--jobs N` at once. Runs cannot collide: each pytest run has its own run id, so its Docker
names and labels are its own and its clean-up removes only its own things; each run also gets its
own grades file and temporary folder here. Written to OUT (default: DIR-grades next to DIR):

    grades.csv                  one row per student: points per lab, total, max, percent, error
    <student>.txt               feedback: every requirement with points, PASS/FAIL and feedback
    <student>.results.json      Gradescope's autograder format, all labs of the student
    <student>/grades.json       the grader's full record; <student>/pytest.log its output
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GRADED = ROOT / "tests" / "graded"
LAB_FOLDER = re.compile(r"^\d\d-[a-z0-9-]+$")
DEFAULT_TIMEOUT = 3600  # seconds per submission: a cold machine builds every lab's images
STOP_GRACE = 120  # seconds a run gets to remove its containers after SIGTERM


@dataclass
class Result:
    """One student's grading run."""

    student: str
    target: Path
    grades: dict | None = None
    error: str = ""
    seconds: float = 0.0
    labs: dict = field(default_factory=dict)  # lab -> {"points", "max_points"}

    @property
    def points(self) -> float:
        return sum(lab["points"] for lab in self.labs.values())

    @property
    def max_points(self) -> float:
        return sum(lab["max_points"] for lab in self.labs.values())

    @property
    def percent(self) -> float | None:
        return round(100 * self.points / self.max_points, 1) if self.max_points else None


# --- finding what to grade -------------------------------------------------------------------

def has_labs(folder: Path) -> bool:
    return any(child.is_dir() and LAB_FOLDER.match(child.name) for child in folder.iterdir())


def submission_root(folder: Path) -> Path:
    """The folder holding the NN-topic/ folders: the folder itself, its exercises/ (a clone of the
    repository) or its only subfolder (an unpacked archive). Otherwise the folder itself, and the
    grader's feedback says which lab folder is missing."""
    if has_labs(folder):
        return folder
    candidates = [folder / "exercises"] + [c for c in folder.iterdir() if c.is_dir() and not c.name.startswith(".")]
    for candidate in candidates:
        if candidate.is_dir() and has_labs(candidate):
            return candidate
        if candidate.is_dir() and (candidate / "exercises").is_dir() and has_labs(candidate / "exercises"):
            return candidate / "exercises"
    return folder


def find_submissions(directory: Path, out_dir: Path | None = None) -> list[tuple[str, Path]]:
    """(student, folder to grade) for every visible subfolder of `directory`, sorted by name."""
    skip = out_dir.resolve() if out_dir else None
    found = []
    for folder in sorted(directory.iterdir()):
        if not folder.is_dir() or folder.name.startswith((".", "_")) or folder.resolve() == skip:
            continue
        found.append((folder.name, submission_root(folder)))
    return found


def graded_files(labs: list[str] | None) -> list[str]:
    """The graded test modules to run: all of tests/graded, or those of the named labs
    ("01-docker" or just "01" selects tests/graded/test_01_*.py)."""
    if not labs:
        return [str(GRADED)]
    files: list[str] = []
    for lab in labs:
        number = lab.split("-", 1)[0]
        matches = sorted(GRADED.glob(f"test_{number}_*.py"))
        if not number.isdigit() or not matches:
            raise ValueError(f"no graded tests for lab {lab!r} (expected tests/graded/test_{number}_*.py)")
        files += [str(path) for path in matches]
    return files


# --- running one submission ------------------------------------------------------------------

_running: dict[str, subprocess.Popen] = {}
_lock = threading.Lock()
_stopping = threading.Event()  # set on interrupt: no new run starts


def grade_one(student: str, target: Path, out_dir: Path, selection: list[str], extra: list[str],
              timeout: float) -> Result:
    """Run the graded suite on one submission in its own pytest process."""
    result = Result(student, target)
    run_dir = out_dir / student
    run_dir.mkdir(parents=True, exist_ok=True)
    grades_path = run_dir / "grades.json"
    grades_path.unlink(missing_ok=True)
    # Its own pytest temp folder: parallel runs never share or clean each other's copies.
    basetemp = Path(tempfile.mkdtemp(prefix=f"labkit-grade-{student}-"))
    command = [sys.executable, "-m", "pytest", *selection, "--target", str(target),
               "--grades-json", str(grades_path), "--basetemp", str(basetemp / "t"),
               "-q", "--no-header", "-p", "no:warnings", *extra]
    started = time.monotonic()
    try:
        code = run_logged(student, command, run_dir / "pytest.log", timeout)
    finally:
        shutil.rmtree(basetemp, ignore_errors=True)
    result.seconds = time.monotonic() - started
    if code == "interrupted" or _stopping.is_set():
        result.error = "not graded: interrupted"
    elif code == "timeout":
        result.error = f"timed out after {timeout:.0f} s (see {run_dir / 'pytest.log'})"
    elif code not in (0, 1):  # 0: all passed, 1: some failed; anything else: no grading happened
        result.error = f"pytest exited with code {code} (see {run_dir / 'pytest.log'})"
    elif not grades_path.is_file():
        result.error = f"no grades were written (see {run_dir / 'pytest.log'})"
    else:
        result.grades = json.loads(grades_path.read_text())
        result.labs = result.grades["labs"]
    return result


def run_logged(student: str, command: list[str], log_path: Path, timeout: float) -> int | str:
    """Run `command` from the repository root with its output in `log_path`; its exit code,
    or "timeout" / "interrupted"."""
    with open(log_path, "w") as log:
        log.write("$ " + " ".join(command) + "\n\n")
        log.flush()
        with _lock:
            if _stopping.is_set():
                return "interrupted"
            # Its own session: a Ctrl-C in the terminal reaches only us, and we stop each run once,
            # cleanly (a second interrupt could cut a run's clean-up short).
            process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                       env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True)
            _running[student] = process
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            stop(process)
            return "timeout"
        finally:
            with _lock:
                _running.pop(student, None)


def stop(*processes: subprocess.Popen) -> None:
    """SIGTERM first (the grader then removes its containers), SIGKILL if that takes too long."""
    alive = [p for p in processes if p.poll() is None]
    for process in alive:
        process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE
    for process in alive:
        try:
            process.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


# --- writing the results ---------------------------------------------------------------------

def write_csv(path: Path, results: list[Result]) -> list[str]:
    """grades.csv: student, points per lab, total, max, percent, error. Returns the lab columns."""
    labs = sorted({lab for r in results for lab in r.labs})
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["student", *labs, "total", "max", "percent", "error"])
        for r in results:
            cells = [f"{r.labs[lab]['points']:g}" if lab in r.labs else "" for lab in labs]
            ok = r.grades is not None
            writer.writerow([r.student, *cells,
                             f"{r.points:g}" if ok else "", f"{r.max_points:g}" if ok else "",
                             f"{r.percent:g}" if ok and r.percent is not None else "", r.error])
    return labs


def feedback_text(r: Result) -> str:
    """The student's feedback file: every requirement, its points, PASS/FAIL and the feedback."""
    lines = [f"{r.student}: grading of {r.target}"]
    if r.grades is None:
        return "\n".join(lines + [f"NOT GRADED: {r.error}", ""])
    lines.append(f"TOTAL: {r.points:g} / {r.max_points:g} points ({r.percent:g} %)")
    for lab in sorted(r.labs):
        lines += ["", f"{lab}: {r.labs[lab]['points']:g} / {r.labs[lab]['max_points']:g}"]
        for test in (t for t in r.grades["tests"] if t["lab"] == lab):
            mark = "PASS" if test["passed"] else "FAIL"
            lines.append(f"  {mark}  {test['points']:g}/{test['max_points']:g}  {test['requirement']}")
            for line in test["feedback"].strip().splitlines():
                lines.append(f"        {line}")
    return "\n".join(lines) + "\n"


def gradescope(r: Result) -> dict:
    """Gradescope's autograder results.json for one student, all labs together."""
    tests = r.grades["tests"] if r.grades else []
    return {
        "score": r.points,
        "execution_time": round(r.seconds),
        "output": (f"{r.points:g} / {r.max_points:g} points" if r.grades else f"not graded: {r.error}"),
        "tests": [{"name": f"{t['lab']}: {t['requirement']}", "score": t["points"], "max_score": t["max_points"],
                   "status": "passed" if t["passed"] else "failed", "output": t["feedback"]} for t in tests],
    }


def disk_use(when: str) -> str:
    """Docker's disk use (`docker system df`): grading builds images, and their layers fill a disk."""
    try:
        table = subprocess.run(["docker", "system", "df"], capture_output=True, text=True, timeout=120,
                               check=True).stdout.rstrip()
    except (OSError, subprocess.SubprocessError) as error:
        table = f"  unknown ({error})"
    return f"Docker disk use {when}:\n{table}"


def write_results(out_dir: Path, results: list[Result]) -> None:
    write_csv(out_dir / "grades.csv", results)
    for r in results:
        (out_dir / f"{r.student}.txt").write_text(feedback_text(r))
        (out_dir / f"{r.student}.results.json").write_text(json.dumps(gradescope(r), indent=2) + "\n")


# --- the whole class -------------------------------------------------------------------------

def grade_many(directory: str | Path, out_dir: str | Path | None = None, jobs: int = 1,
               labs: list[str] | None = None, pytest_args: list[str] | None = None,
               timeout: float = DEFAULT_TIMEOUT, echo=print) -> list[Result]:
    """Grade every submission folder in `directory`; write grades.csv and per-student files to `out_dir`."""
    _stopping.clear()
    directory = Path(directory).expanduser().resolve()
    if not directory.is_dir():
        raise ValueError(f"{directory} is not a folder")
    out_dir = Path(out_dir).expanduser().resolve() if out_dir else directory.with_name(directory.name + "-grades")
    submissions = find_submissions(directory, out_dir)
    if not submissions:
        raise ValueError(f"{directory} holds no submission folders")
    selection = graded_files(labs)
    out_dir.mkdir(parents=True, exist_ok=True)
    echo(f"grading {len(submissions)} submission(s) from {directory}, {max(1, jobs)} at a time -> {out_dir}")
    echo(disk_use("before grading"))

    def one(item: tuple[str, Path]) -> Result:
        student, target = item
        r = grade_one(student, target, out_dir, selection, list(pytest_args or []), timeout)
        score = r.error if r.grades is None else f"{r.points:g}/{r.max_points:g} ({r.percent:g} %)"
        echo(f"  {student:<24} {score}  [{r.seconds:.0f} s]")
        return r

    pool = ThreadPoolExecutor(max_workers=max(1, jobs))
    try:
        results = list(pool.map(one, submissions))
    except BaseException:  # Ctrl-C or SIGTERM: every running grader removes its containers first
        pool.shutdown(wait=False, cancel_futures=True)  # nothing new starts
        with _lock:
            _stopping.set()
            running = list(_running.values())
        echo(f"interrupted: stopping {len(running)} running grader(s), which remove their containers")
        stop(*running)
        raise
    pool.shutdown()
    write_results(out_dir, results)
    echo(disk_use("after grading (`labkit clean` removes the build layers the runs kept as cache)"))
    echo(f"wrote {out_dir / 'grades.csv'} and, per student, <student>.txt and <student>.results.json")
    return results


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("directory", metavar="DIR", help="a folder with one submission folder per student")
    parser.add_argument("--out", help="where to write the results (default: DIR-grades next to DIR)")
    parser.add_argument("--jobs", "-j", type=int, default=1, help="submissions graded at once (default 1)")
    parser.add_argument("--labs", help="only these labs, comma-separated, e.g. 01-docker,04-flask-serving")
    parser.add_argument("-k", dest="keyword", help="only graded tests matching this pytest -k expression")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                        help=f"seconds per submission before its run is stopped (default {DEFAULT_TIMEOUT})")
    return parser


def run(args: argparse.Namespace) -> int:
    """Exit 0 when every submission was graded, 1 when one could not be, 2 on bad arguments,
    130 when interrupted."""
    labs = [lab.strip() for lab in args.labs.split(",") if lab.strip()] if args.labs else None
    # `kill` / a CI time-out takes the same path as Ctrl-C: the running graders are stopped cleanly.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        results = grade_many(args.directory, args.out, jobs=args.jobs, labs=labs,
                             pytest_args=["-k", args.keyword] if args.keyword else [], timeout=args.timeout)
    except ValueError as error:
        print(f"labkit grade-many: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("labkit grade-many: interrupted; no grades.csv written", file=sys.stderr)
        return 130
    return 1 if any(r.grades is None for r in results) else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="labkit grade-many", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    return run(add_arguments(parser).parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
