"""The tree the grader grades: the course's given files of a lab plus the student's own files.

A submission is untrusted. It is read without following links, within size caps, and the files a
lab's README calls *given* (app code, Dockerfiles, train.py, ...) are always the course's own, taken
from `exercises/<lab>/`: a student who edits a given file is graded with the original and told so.

    assembled = assemble("01-docker", Path("submission/01-docker"), Path("/tmp/x/01-docker"))
    assembled.modified_given   # given files the submission changed (graded with the course's)
"""
from __future__ import annotations

import filecmp
import os
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COURSE = ROOT / "exercises"  # the given files of every lab, verbatim (labkit release keeps them so)

# The files each lab's README says the student writes; everything else in exercises/<lab>/ is given.
STUDENT_FILES: dict[str, tuple[str, ...]] = {
    "01-docker": ("Dockerfile", ".dockerignore"),
    "02-compose": ("compose.yaml",),
    "03-swarm": ("stack.yaml",),
    "04-flask-serving": ("service/app.py", "service/cache.py"),
    "05-celery": ("tasks.py", "api.py"),
}
MAX_FILE_BYTES = 1024 * 1024          # 1 MiB: the biggest honest file of any lab is ~10 KiB
MAX_TOTAL_BYTES = 20 * 1024 * 1024    # 20 MiB for a lab folder
MAX_FILES = 2000
# Local clutter that never belongs to a submission: not copied, not counted, not checked.
SKIPPED_DIRS = {".git", ".venv", "venv", "__pycache__", ".pytest_cache", ".mypy_cache",
                ".ipynb_checkpoints", "node_modules"}


class Rejected(Exception):
    """The submission cannot be graded as it is (a link out of its folder, too big, ...)."""


@dataclass
class Assembled:
    lab: str
    root: Path
    student_files: list[str] = field(default_factory=list)   # found in the submission, copied
    missing: list[str] = field(default_factory=list)         # student files the submission lacks
    modified_given: list[str] = field(default_factory=list)  # given files it changed: graded with the course's
    extra: list[str] = field(default_factory=list)           # other files of the student, copied

    def notes(self) -> list[str]:
        """What the grader tells the student about the tree it graded."""
        notes = []
        if self.modified_given:
            notes.append("graded with the course's given files instead of your modified "
                         + ", ".join(self.modified_given))
        if self.missing:
            notes.append("missing: " + ", ".join(self.missing))
        return notes


def given_files(lab: str) -> list[str]:
    """Relative paths of the lab's given files (POSIX style)."""
    course = COURSE / lab
    own = set(STUDENT_FILES[lab])
    return sorted(p.relative_to(course).as_posix() for p in course.rglob("*")
                  if p.is_file() and p.relative_to(course).as_posix() not in own
                  and not SKIPPED_DIRS.intersection(p.relative_to(course).parts))


def submitted_files(folder: Path) -> dict[str, Path]:
    """{relative path: file to copy} of a submission folder, read without following any link.

    A link that stays inside the folder is taken as the file it names; any other link, special
    file, oversized file or oversized folder is rejected before anything is built."""
    if folder.is_symlink():
        raise Rejected(f"{folder.name}/ is a symbolic link; submit the folder itself")
    base = folder.resolve()
    found: dict[str, Path] = {}
    total = 0
    for directory, dirs, files in os.walk(base, followlinks=False):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
        for entry in [*files, *[d for d in dirs if (Path(directory) / d).is_symlink()]]:
            path = Path(directory) / entry
            relative = path.relative_to(base).as_posix()
            source = link_target(path, base, relative) if path.is_symlink() else path
            mode = source.lstat().st_mode
            if not stat.S_ISREG(mode):
                raise Rejected(f"{relative} is not a regular file (a device, pipe or folder link); remove it")
            size = source.lstat().st_size
            if size > MAX_FILE_BYTES:
                raise Rejected(f"{relative} is {size / 2**20:.1f} MiB; files over "
                               f"{MAX_FILE_BYTES // 2**20} MiB are not accepted")
            total += size
            if total > MAX_TOTAL_BYTES or len(found) >= MAX_FILES:
                raise Rejected(f"the folder holds more than {MAX_TOTAL_BYTES // 2**20} MiB or {MAX_FILES} "
                               "files; submit only the lab's files")
            found[relative] = source
        dirs[:] = [d for d in dirs if not (Path(directory) / d).is_symlink()]
    return found


def link_target(link: Path, base: Path, relative: str) -> Path:
    """The file a link inside the submission names, when it stays inside the submission."""
    target = Path(os.path.normpath(link.parent / os.readlink(link)))
    inside = target == base or base in target.parents
    if not inside or target.is_symlink() or not target.exists():
        raise Rejected(f"{relative} is a symbolic link to {os.readlink(link)!r}, outside the lab folder; "
                       "submit the file itself")
    return target


def assemble(lab: str, submitted: Path, dest: Path) -> Assembled:
    """Build the tree to grade in `dest`: the course's given files + the submission's other files."""
    if lab not in STUDENT_FILES:
        raise ValueError(f"unknown lab {lab!r}")
    files = submitted_files(submitted)
    given = given_files(lab)
    result = Assembled(lab=lab, root=dest)
    dest.mkdir(parents=True, exist_ok=True)
    for relative in given:
        course_file = COURSE / lab / relative
        copy(course_file, dest / relative)
        if relative in files and not filecmp.cmp(files[relative], course_file, shallow=False):
            result.modified_given.append(relative)
    for relative, source in sorted(files.items()):
        if relative in given:
            continue
        copy(source, dest / relative)
        (result.student_files if relative in STUDENT_FILES[lab] else result.extra).append(relative)
    result.missing = [f for f in STUDENT_FILES[lab] if f not in files]
    return result


def copy(source: Path, target: Path) -> None:
    """Copy one regular file's bytes (never a link, never its owner or mode bits beyond rw)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(source, "rb") as reader, open(target, "wb") as writer:
        shutil.copyfileobj(reader, writer)
    # An entrypoint script stays executable; nothing else of the mode is kept.
    target.chmod(0o755 if source.stat().st_mode & 0o111 else 0o644)
