"""Which labs to grade: the ones asked for (`make grade LAB=01,04`), or the ones the student started.

A lab is *not started* while every file the student writes in it is still the released stub (or
absent): grading it would only build images to print a column of FAILs. The stubs are what
`labkit release` makes from solutions/, or, in a student release (no solutions/), exercises/ itself.
"""
from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Callable

from labkit.release import EXERCISES, SOLUTIONS, stub_text
from labkit.submission import STUDENT_FILES

LABS = tuple(sorted(STUDENT_FILES))
GRADE, SKIP, NOT_STARTED = "grade", "skip", "not started"


class UnknownLab(ValueError):
    """A LAB= value that names no lab."""


def parse_labs(spec: str) -> list[str]:
    """Labs named by "01", "1", "01-docker" or a comma-separated list of those."""
    chosen: list[str] = []
    for word in filter(None, (w.strip() for w in spec.split(","))):
        matches = [lab for lab in LABS if lab == word or lab.split("-", 1)[0] == word.zfill(2)]
        if not matches:
            raise UnknownLab(f"no lab {word!r}; the labs are {', '.join(LABS)} (LAB=01 or LAB=01,04)")
        chosen += [lab for lab in matches if lab not in chosen]
    return chosen


def stub(lab: str, relative: str) -> str | None:
    """The released stub of one student file (None: the course has no such file)."""
    source = SOLUTIONS / lab / relative
    if source.is_file():
        return stub_text(source.read_text(), f"{lab}/{relative}", python=source.suffix == ".py")
    given = EXERCISES / lab / relative
    return given.read_text() if given.is_file() else None


def comparable(text: str) -> str:
    """Text as far as "did the student write anything" goes: CRLF checkouts and trailing blanks aside."""
    return "\n".join(line.rstrip() for line in text.replace("\r\n", "\n").splitlines()).strip()


def started(lab: str, folder: Path) -> bool:
    """Whether any student file of the lab in `folder` differs from its stub."""
    for relative in STUDENT_FILES[lab]:
        path = folder / relative
        if path.is_symlink():
            return True  # not a stub; the grader rejects or resolves links, not this check
        if not path.is_file():
            continue
        reference = stub(lab, relative)
        try:
            written = path.read_text()
        except (OSError, UnicodeDecodeError):
            return True  # not the stub, whatever it is: let the grader say what is wrong
        if reference is None or comparable(written) != comparable(reference):
            return True
    return False


def planner(spec: str, target: Path) -> Callable[[str], str]:
    """What `--lab spec` does with a lab's tests: GRADE them, SKIP them, or report the lab NOT_STARTED.

    spec: "all"; "started" (the labs the student started in `target`); or labs as parse_labs reads them.
    """
    if spec == "all":
        return lambda lab: GRADE
    if spec == "started":
        return cache(lambda lab: GRADE if started(lab, target / lab) else NOT_STARTED)
    chosen = set(parse_labs(spec))
    return lambda lab: GRADE if lab in chosen else SKIP
