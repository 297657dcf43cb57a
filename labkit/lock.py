"""The one lock and every file generated from it.

`uv.lock` (next to pyproject.toml) holds the complete resolved dependency set of the course, for
the host and for the images, with hashes: uv resolves all of it at once for every Python from 3.11
on and every platform (a student's arm64 laptop builds the same images). Generated from it, by
`uv export`, and never edited by hand:

    labs/**/requirements.txt, solutions/**/requirements.txt   the images' set (the `service` group);
                                                              exercises/ copies solutions/ (release)
    labkit/locked/host.txt         the student's venv: grading, `make up`
    labkit/locked/notebooks.txt    ... plus Jupyter (`make notebooks`)
    labkit/locked/maintainer.txt   ... plus notebook execution and API fuzzing (`make test`)

Every file pins every package with its hashes, so pip installs them in hash-checking mode (it turns
that on by itself when a requirements file carries hashes): exactly these files, or nothing.

`labkit lock [--upgrade NAME]` re-resolves and rewrites them; `labkit release --check` fails when one
differs from what the lock makes.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUMP = "bump a version: edit its pin in pyproject.toml, `labkit lock` (`--upgrade NAME` for one not pinned there), `make test`"

# name -> (what it is for, the `uv export` arguments that select it)
SETS = {
    "service": ("the images' dependencies", ["--only-group", "service"]),
    "host": ("the course's venv (grading, make up)", []),
    "notebooks": ("the course's venv with Jupyter (make notebooks)", ["--extra", "notebooks"]),
    "maintainer": ("the maintainers' venv (make test)", ["--extra", "maintainer"]),
}


class LockError(RuntimeError):
    """uv is missing, or the lock does not match pyproject.toml."""


def uv(*args: str) -> str:
    """Run uv (installed in the venv with labkit) in the repository; its standard output."""
    exe = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if exe is None:
        raise LockError("uv is not installed: run `make venv`")
    done = subprocess.run([exe, *args], cwd=ROOT, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise LockError(f"uv {' '.join(args)} failed:\n{done.stderr.strip()}")
    return done.stdout


def export(name: str) -> str:
    """One set as a requirements file: every package pinned, with hashes, under a short header."""
    purpose, selection = SETS[name]
    body = uv("export", "--frozen", "--no-emit-project", "--no-header", "--format", "requirements-txt", *selection)
    header = (f"# {purpose.capitalize()}: generated from uv.lock by `labkit lock`; do not edit.\n"
              "# Every package is pinned with its hashes, and pip checks them.\n")
    return header + body


def lab_requirements() -> list[Path]:
    """Every Python lab's requirements.txt in labs/ and solutions/ (exercises/ is copied from solutions/)."""
    return sorted(p for top in ("labs", "solutions") for p in (ROOT / top).glob("[0-9][0-9]-*/**/requirements.txt"))


def expected() -> dict[Path, str]:
    """Each generated file and the text the lock makes for it."""
    files = {ROOT / "labkit" / "locked" / f"{name}.txt": export(name) for name in SETS if name != "service"}
    service = export("service")
    files.update({path: service for path in lab_requirements()})
    return files


def sync(check: bool = False) -> list[str]:
    """Write the generated files (or, with check, only compare); the ones that differed, relative."""
    if check:
        uv("lock", "--check")  # pyproject.toml changed since the lock was made -> LockError
    stale = []
    for path, text in expected().items():
        if not path.is_file() or path.read_text() != text:
            stale.append(str(path.relative_to(ROOT)))
            if not check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
    return stale


def lock(upgrade: list[str] | None = None) -> int:
    """`labkit lock`: re-resolve (the named packages to their newest allowed release), then regenerate
    every file, exercises/ included."""
    from labkit.release import release

    try:
        uv("lock", *[arg for name in upgrade or [] for arg in ("--upgrade-package", name)])
    except LockError as error:
        print(f"lock: {error}", file=sys.stderr)
        return 1
    return release()
