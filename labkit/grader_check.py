"""Grade the grader: run it on a corpus of submissions whose right verdicts are known.

    labkit grader-check [--labs 01-docker,04-flask-serving] [--quick]

The corpus is `tests/fixtures/submissions/<lab>/<variant>/`: each variant holds only the files that
differ from `solutions/<lab>` (a submission = solutions/<lab> + the variant's files). Its verdict in
`tests/fixtures/submissions/verdicts.yaml`:

    01-docker:
      pip3-slim: {kind: correct, about: "...", fail: []}
      wrong-script-without-exec: {kind: wrong, about: "...", fail: [test_it_stops_promptly_on_sigterm], quick: true}

A verdict holds when exactly the tests in `fail` fail (a name without `[...]` stands for every case
of a parametrized test) and every other test of the lab passes. Each variant is graded by its own
pytest process, one after the other; the table at the end counts, per lab, the correct variants that
passed fully and the wrong and gaming ones caught, and lists every disagreement. `--quick` grades
the variants marked `quick: true`, chosen so that every requirement is covered. `--smoke` grades the
variants marked `smoke: true` with only the tests their verdict expects to fail (the tests `make test`
can afford: each such check is shown to catch a submission that games or misses its requirement).
Verdicts may be split over several files `verdicts*.yaml` (one per group of labs).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from labkit.engine import builder_env

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "fixtures" / "submissions"
VARIANT_TIMEOUT = 1800  # seconds for one variant's grading, builds included


@dataclass
class Result:
    lab: str
    variant: str
    kind: str
    disagreements: list[str] = field(default_factory=list)
    seconds: float = 0.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--labs", help="comma-separated labs (default: every lab in the corpus)")
    parser.add_argument("--quick", action="store_true", help="only the variants marked quick: true")
    parser.add_argument("--smoke", action="store_true",
                        help="only the variants marked smoke: true, and only the tests they must fail")
    parser.add_argument("--variants", help="comma-separated variant names (default: all)")


def load_verdicts() -> dict:
    """Every lab's verdicts, from all the files `verdicts*.yaml` of the corpus."""
    verdicts: dict = {}
    for path in sorted(CORPUS.glob("verdicts*.yaml")):
        for lab, variants in (yaml.safe_load(path.read_text()) or {}).items():
            verdicts.setdefault(lab, {}).update(variants)
    return verdicts


def lab_module(lab: str) -> Path:
    """tests/graded/test_01_docker.py for 01-docker."""
    return ROOT / "tests" / "graded" / f"test_{lab.replace('-', '_')}.py"


def make_submission(lab: str, variant: str, into: Path) -> Path:
    """solutions/<lab> with the variant's files laid over it, as <into>/<lab>."""
    target = into / lab
    shutil.copytree(ROOT / "solutions" / lab, target, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(CORPUS / lab / variant, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def grade(lab: str, variant: str, only: list[str] | None = None) -> tuple[list[dict], str]:
    """The graded outcomes of one variant ([{test, passed, status, feedback}]) and pytest's output tail;
    with `only`, just the tests of those names."""
    with tempfile.TemporaryDirectory(prefix=f"labkit-corpus-{variant}-") as tmp:
        make_submission(lab, variant, Path(tmp))
        grades = Path(tmp) / "out" / "grades.json"
        env = {**os.environ, **builder_env()}
        process = subprocess.Popen([sys.executable, "-m", "pytest", str(lab_module(lab)), "--target", tmp,
                                    "--grades-json", str(grades), "-q", "--no-header", "-p", "no:warnings",
                                    "-p", "no:cacheprovider",
                                    *(["-k", " or ".join(sorted({n.split("[")[0] for n in only}))] if only else [])],
                                   cwd=ROOT, env=env, text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            output = process.communicate(timeout=VARIANT_TIMEOUT)[0][-5000:]
        except subprocess.TimeoutExpired:
            process.terminate()  # pytest cleans up on SIGTERM, like on Ctrl-C
            output = process.communicate(timeout=120)[0][-5000:] + f"\ngrading took more than {VARIANT_TIMEOUT} s"
        finally:
            sweep(process.pid)
        if not grades.exists():
            return [], output
        return json.loads(grades.read_text())["tests"], output


def sweep(pid: int) -> None:
    """Remove whatever the finished grading run of process `pid` left in Docker (a safety net: the run
    removes its own things at its end)."""
    import docker

    from labkit.resources import find_owned, remove_labelled, run_of

    client = docker.from_env()
    runs = {run_of(o) for objs in find_owned(client, None).values() for o in objs}
    for run in runs:
        if run.startswith(f"{pid}-"):
            for thing in remove_labelled(client, run):
                print(f"[grader-check] removed what the run left: {thing}", flush=True)


def disagreements(outcomes: list[dict], expected_fail: list[str]) -> list[str]:
    """Where the grader's outcomes differ from the verdict (empty: the verdict holds)."""
    found = []
    names = set()
    for outcome in outcomes:
        name = outcome["test"].split("::")[-1]
        base = name.split("[")[0]
        names.update((name, base))
        should_fail = name in expected_fail or base in expected_fail
        if outcome.get("status") == "could not grade":
            found.append(f"{name}: could not grade ({outcome['feedback'][:120]})")
        elif should_fail and outcome["passed"]:
            found.append(f"{name}: passed, should fail")
        elif not should_fail and not outcome["passed"]:
            found.append(f"{name}: failed, should pass -> {outcome['feedback'].splitlines()[0][:160]}")
    found += [f"{name}: in the verdict, but no such test ran" for name in expected_fail if name not in names]
    return found


def run(args: argparse.Namespace) -> int:
    verdicts = load_verdicts()
    labs = args.labs.split(",") if args.labs else sorted(verdicts)
    only = set(args.variants.split(",")) if args.variants else None
    results: list[Result] = []
    began = time.monotonic()
    for lab in labs:
        for variant, verdict in verdicts.get(lab, {}).items():
            if ((args.quick and not verdict.get("quick")) or (args.smoke and not verdict.get("smoke"))
                    or (only and variant not in only)):
                continue
            started = time.monotonic()
            outcomes, output = grade(lab, variant, (verdict.get("fail") or None) if args.smoke else None)
            result = Result(lab, variant, verdict["kind"], seconds=time.monotonic() - started)
            result.disagreements = (disagreements(outcomes, verdict.get("fail") or []) if outcomes
                                    else [f"no grades were written:\n{output}"])
            results.append(result)
            mark = "ok  " if not result.disagreements else "DIFF"
            print(f"[grader-check] {mark} {lab}/{variant} ({verdict['kind']}) {result.seconds:.0f} s", flush=True)
            for line in result.disagreements:
                print(f"    {line}", flush=True)
    print_table(results, time.monotonic() - began)
    return 1 if any(r.disagreements for r in results) else 0


def print_table(results: list[Result], seconds: float) -> None:
    print(f"\n{'lab':<18} {'correct: passed fully':>22} {'wrong: caught':>14} {'gaming: caught':>15}")
    for lab in sorted({r.lab for r in results}):
        cells = []
        for kind in ("correct", "wrong", "gaming"):
            rows = [r for r in results if r.lab == lab and r.kind == kind]
            cells.append(f"{sum(not r.disagreements for r in rows)}/{len(rows)}")
        print(f"{lab:<18} {cells[0]:>22} {cells[1]:>14} {cells[2]:>15}")
    for r in results:
        for line in r.disagreements:
            print(f"  DISAGREE {r.lab}/{r.variant} ({r.kind}): {line}")
    agreed = sum(not r.disagreements for r in results)
    print(f"{agreed}/{len(results)} verdicts right in {seconds / 60:.1f} min")
