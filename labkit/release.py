"""Generate exercises/ from solutions/: every solution region becomes a TODO stub; and write the
graded requirements into the documents first (labkit.documents), so the exercise READMEs carry them.

A region starts at a line `# BEGIN SOLUTION` and ends at `# END SOLUTION` (the same comment
syntax serves Python, Dockerfile, YAML, nginx conf and .dockerignore). The region's own
`# TODO ...` lines are kept: they tell the student what to write. In Python, an indented region
also gets `raise NotImplementedError`, so the stub still parses and fails loudly when called.
"""
from __future__ import annotations

import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions"
EXERCISES = ROOT / "exercises"
BEGIN, END = "# BEGIN SOLUTION", "# END SOLUTION"
JUNK = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", ".ipynb_checkpoints")


class MarkerError(ValueError):
    """Unmatched, nested or instruction-less solution markers."""


def stub_text(text: str, where: str = "<text>", python: bool = False) -> str:
    """The student's version of one file's text."""
    out: list[str] = []
    region: list[str] | None = None
    begin_line = 0
    for number, line in enumerate(text.splitlines(keepends=True), 1):
        marker = line.strip()
        if marker.startswith(BEGIN):
            if region is not None:
                raise MarkerError(f"{where}:{number}: nested '{BEGIN}' (the region opened at line {begin_line})")
            region, begin_line = [], number
            indent = line[: len(line) - len(line.lstrip())]
        elif marker.startswith(END):
            if region is None:
                raise MarkerError(f"{where}:{number}: '{END}' without a '{BEGIN}'")
            todos = [l for l in region if l.strip().startswith("# TODO")]
            if not todos:
                raise MarkerError(f"{where}:{begin_line}: a solution region needs a '# TODO ...' line for the student")
            out.extend(todos)
            if python and indent:
                out.append(f'{indent}raise NotImplementedError("TODO: see the comment above")\n')
            region = None
        elif region is not None:
            region.append(line)
        else:
            out.append(line)
    if region is not None:
        raise MarkerError(f"{where}:{begin_line}: '{BEGIN}' is never closed")
    return "".join(out)


def has_markers(text: str) -> bool:
    return BEGIN in text or END in text


def generate(solutions: Path, exercises: Path) -> None:
    """Write the exercises tree for a solutions tree (exercises must not exist yet)."""
    shutil.copytree(solutions, exercises, ignore=JUNK)
    for path in sorted(exercises.rglob("*")):
        if not path.is_file():
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        if has_markers(text):
            where = str(path.relative_to(exercises))
            path.write_text(stub_text(text, where, python=path.suffix == ".py"))


def differences(left: Path, right: Path) -> list[str]:
    """Relative paths that differ between two trees (missing on either side included)."""
    found: list[str] = []

    def walk(cmp: filecmp.dircmp, prefix: str) -> None:
        for name in cmp.left_only + cmp.right_only + cmp.diff_files + cmp.funny_files:
            found.append(prefix + name)
        for name, sub in cmp.subdirs.items():
            walk(sub, f"{prefix}{name}/")

    walk(filecmp.dircmp(left, right, ignore=["__pycache__", ".pytest_cache", ".ipynb_checkpoints"]), "")
    return sorted(found)


def release_documents(check: bool) -> list[str]:
    """Refresh (or, with check, only compare) the generated requirement tables; returns the problems."""
    from labkit.documents import sync
    from labkit.requirements import CollectionError, collect

    try:
        rows = collect()
    except CollectionError as error:
        return [str(error)]
    return sync(ROOT, rows, write=not check)


def release_api_description(check: bool) -> list[str]:
    """Refresh (or, with check, only compare) the gateway's openapi.json, made from the services' schemas."""
    from labkit import openapi

    return openapi.sync(check)


# Given modules a worked example shares with its exercise: one source, a copy in the example's folder
# (each lab folder stays a self-contained build context).
SHARED_COPIES = {"labs/05-celery/publisher.py": "solutions/05-celery/publisher.py"}


def release_shared_copies(check: bool) -> list[str]:
    """Refresh (or, with check, only compare) the copies of SHARED_COPIES; returns the problems."""
    problems = []
    for copy, source in SHARED_COPIES.items():
        wanted = (ROOT / source).read_bytes()
        if (ROOT / copy).exists() and (ROOT / copy).read_bytes() == wanted:
            continue
        if check:
            problems.append(f"{copy} is not a copy of {source}; edit the source and run 'make release'")
        else:
            (ROOT / copy).write_bytes(wanted)
    return problems


def release(check: bool = False) -> int:
    if not locked_files_ok(check):
        return 1
    problems = release_documents(check)
    for problem in problems:
        print(f"release: {problem}", file=sys.stderr)
    if problems and check:
        print("the requirement tables are not what 'labkit release' writes from tests/graded; run 'make release'",
              file=sys.stderr)
    api_problems = release_api_description(check)
    for problem in api_problems:
        print(f"release: {problem}", file=sys.stderr)
    problems += api_problems
    copy_problems = release_shared_copies(check)
    for problem in copy_problems:
        print(f"release: {problem}", file=sys.stderr)
    problems += copy_problems
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp) / "exercises"
        try:
            generate(SOLUTIONS, fresh)
        except MarkerError as error:
            print(f"release: {error}", file=sys.stderr)
            return 1
        if check:
            changed = differences(fresh, EXERCISES) if EXERCISES.exists() else ["exercises/ (missing)"]
            if changed:
                print("exercises/ is not what 'labkit release' makes from solutions/; run 'make release'. Differs:")
                for name in changed:
                    print(f"  {name}")
                return 1
            if not problems:
                print("exercises/ and the requirement tables are up to date with solutions/ and tests/graded")
            return 1 if problems else 0
        shutil.rmtree(EXERCISES, ignore_errors=True)
        shutil.copytree(fresh, EXERCISES)
    print(f"exercises/ regenerated from solutions/ ({sum(1 for p in EXERCISES.rglob('*') if p.is_file())} files)")
    return 1 if problems else 0


def locked_files_ok(check: bool) -> bool:
    """The hook into labkit.lock: every lab's requirements.txt (and the venv's) is generated from
    uv.lock before exercises/ copies solutions/; with check, only compared."""
    from labkit.lock import BUMP, LockError, sync

    try:
        stale = sync(check)
    except LockError as error:
        print(f"release: {error}\nrun `labkit lock` ({BUMP})", file=sys.stderr)
        return False
    if check and stale:
        print("these files are not what uv.lock makes; run `labkit lock` (never edit them by hand):")
        print("\n".join(f"  {name}" for name in stale))
        return False
    return True
