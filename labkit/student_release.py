"""`labkit release --student DIR`: the repository students get, without the answers.

What changes against the course's repository (STUDENT_RELEASE.md in the release says the same):
- no `solutions/`, no maintainer tests (only the grader: `tests/graded/`, `tests/conftest.py` and the
  data it reads in `tests/fixtures/NN-topic/`), no `.ci/`;
- `make grade` grades `exercises/` (the stubs are what "not started" compares with);
- the service of `make up`, `make bench*` and notebooks 04 (part 2 on) and 06 is built from the
  student's own `exercises/04-flask-serving` and `exercises/05-celery`, and `make up` says so and stops
  while they are not started (labkit.services): a reference service would hand out the answers;
- the maintainer targets (`make test`, `make release`, ...) say they are not part of a student release;
- `.github/workflows/classroom.yml`: GitHub Classroom autograding, one step per lab with its points.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

from labkit.classroom import workflow
from labkit.requirements import collect, totals
from labkit.services import SERVICE_LABS

ROOT = Path(__file__).resolve().parent.parent
# The grader and the data it reads (tests/fixtures/NN-topic/); not the maintainer tests, nor the corpus of
# correct and wrong submissions (tests/fixtures/submissions/: correct ones are answers).
SHIPPED_TESTS = re.compile(r"^tests/(graded/|conftest\.py$|fixtures/\d\d-[^/]+/)")
LEFT_OUT = ("solutions/", ".ci/", ".github/")
MAINTAINER_TARGETS = ("test", "test-unit", "test-graded", "test-stubs", "test-notebooks", "test-notebooks-a",
                      "test-notebooks-b", "release", "release-check", "chaos")
SERVICE_PATHS = {f"solutions/{lab}": f"exercises/{lab}" for lab in SERVICE_LABS}
JUNK = re.compile(r"(^|/)(__pycache__|\.pytest_cache|\.ipynb_checkpoints|\.venv|build)(/|$)|\.pyc$")
NOTICE = {
    "en": ("**Student release.** This notebook builds the service from *your* `exercises/{labs}` "
           "(there is no `solutions/` here). Run it once `make grade LAB={numbers}` passes; before that, "
           "the cells that start the service fail with your service's own error."),
    "ru": ("**Версия для студентов.** Этот ноутбук собирает сервис из *ваших* `exercises/{labs}` "
           "(папки `solutions/` здесь нет). Запускайте его, когда `make grade LAB={numbers}` проходит; "
           "до этого ячейки, которые запускают сервис, упадут с ошибкой вашего же сервиса."),
}


class ReleaseError(RuntimeError):
    """The course changed in a way the student release does not know how to rewrite."""


def course_files(root: Path = ROOT) -> list[str]:
    """The files of the course: what git tracks or would (not ignored), as in the working tree; else a walk."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                                capture_output=True, check=True, timeout=60)
        files = [f for f in listed.stdout.decode().split("\0") if f and (root / f).is_file()]
    except (OSError, subprocess.SubprocessError):
        files = [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()
                 and not p.relative_to(root).as_posix().startswith(".git/")]
    return sorted(f for f in files if not JUNK.search(f))


def shipped(relative: str) -> bool:
    if relative.startswith(LEFT_OUT):
        return False
    return not relative.startswith("tests/") or bool(SHIPPED_TESTS.match(relative))


def without_targets(makefile: str, targets: tuple[str, ...]) -> str:
    """The Makefile without the rules of `targets`, plus one rule that says they are for maintainers."""
    rule = re.compile(rf"^({'|'.join(map(re.escape, targets))}):.*\n(?:\t.*\n)*\n?", re.MULTILINE)
    text, removed = rule.subn("", makefile)
    if removed != len(targets):
        raise ReleaseError(f"expected {len(targets)} maintainer rules in the Makefile, found {removed}")
    return text.rstrip("\n") + f"""

# A student release (labkit release --student): these need solutions/ and the maintainer tests.
{' '.join(targets)}:
\t@echo "make $@ is for the course's maintainers: this student release has no solutions/ (see STUDENT_RELEASE.md)"; exit 2
"""


def service_paths(text: str) -> str:
    """solutions/04-flask-serving -> exercises/04-flask-serving (and 05)."""
    for old, new in SERVICE_PATHS.items():
        text = text.replace(old, new)
    return text


def notebook(text: str, relative: str) -> str:
    """A notebook that built a reference service builds the student's, with a cell saying so."""
    if not any(old in text for old in SERVICE_PATHS) and "docker-compose.yaml" not in text:
        return text  # it runs only the worked examples in labs/
    data = json.loads(text)
    used = [lab for lab in SERVICE_LABS if f"solutions/{lab}" in text] or list(SERVICE_LABS)
    lang = "ru" if "/ru/" in f"/{relative}" else "en"
    notice = NOTICE[lang].format(labs="`, `exercises/".join(used), numbers=",".join(lab[:2] for lab in used))
    data["cells"].insert(1, {"cell_type": "markdown", "metadata": {}, "source": [notice]})
    return service_paths(json.dumps(data, ensure_ascii=False, indent=1) + "\n")


def student_note(labs_total: dict[str, float]) -> str:
    return f"""# This is the student release of the course

It is the course's repository without the reference answers. What is different:

- there is no `solutions/`: `make grade LAB=01` grades your `exercises/01-docker`, and `make grade`
  the labs you started ({", ".join(f"{lab} {points:g}" for lab, points in labs_total.items())} points);
- `make up`, `make up-swarm`, `make bench`, `make bench-sync` and notebooks 04 (from part 2) and 06 build the
  week's service from **your** `exercises/04-flask-serving` and `exercises/05-celery`: they run once those
  labs pass (`make grade LAB=04,05`), and `make up` says so and stops while they are not started;
- `make notebooks` works as in the course; notebooks 01–03 and 05 use only the worked examples in `labs/`;
- `make test`, `make release` and the other maintainer targets are not here (they need the answers);
- `.github/workflows/classroom.yml` grades every push on GitHub Classroom: one step per lab, with its points.

## Версия для студентов

Это репозиторий курса без эталонных решений. Отличия:

- папки `solutions/` нет: `make grade LAB=01` проверяет ваш `exercises/01-docker`, а `make grade` — начатые
  лабораторные;
- `make up`, `make up-swarm`, `make bench`, `make bench-sync` и ноутбуки 04 (начиная с части 2) и 06 собирают
  сервис недели из **ваших** `exercises/04-flask-serving` и `exercises/05-celery`: они заработают, когда эти
  лабораторные пройдут проверку (`make grade LAB=04,05`); пока они не начаты, `make up` так и скажет;
- `make notebooks` работает как в курсе; ноутбуки 01–03 и 05 используют только разобранные примеры из `labs/`;
- `make test`, `make release` и другие цели для авторов курса здесь не нужны и не работают;
- `.github/workflows/classroom.yml` проверяет каждый push в GitHub Classroom: по шагу на лабораторную, с баллами.
"""


def rewrite(relative: str, text: str) -> str:
    """One shipped text file as the student release has it."""
    if relative == "Makefile":
        return without_targets(text, MAINTAINER_TARGETS)
    if relative.endswith(".ipynb"):
        return notebook(text, relative)
    if relative == "docker-compose.yaml" and not any(f"build: {old}" in text for old in SERVICE_PATHS):
        raise ReleaseError("docker-compose.yaml builds no solutions/ service any more: check the release rules")
    if relative == "README.md":
        text = re.sub(r"^solutions/NN-topic/.*\n", "", text, flags=re.MULTILINE)
        text = text.replace("\n", "\n\n> **Student release**: see [STUDENT_RELEASE.md](STUDENT_RELEASE.md) for what "
                            "differs from the course's repository.\n", 1)
    return service_paths(text)


def write_student_release(dest: Path, root: Path = ROOT) -> list[str]:
    """Write the student release into `dest` (new or empty); returns the files written."""
    if dest.exists() and any(dest.iterdir()):
        raise ReleaseError(f"{dest} is not empty")
    labs_total = totals(collect())
    written = []
    for relative in filter(shipped, course_files(root)):
        target = dest / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            text = (root / relative).read_text(encoding="utf-8")
        except UnicodeDecodeError:
            shutil.copy2(root / relative, target)
        else:
            target.write_text(rewrite(relative, text), encoding="utf-8")
            shutil.copymode(root / relative, target)
        written.append(relative)
    extra = {"STUDENT_RELEASE.md": student_note(labs_total), ".github/workflows/classroom.yml": workflow(labs_total)}
    for relative, text in extra.items():
        (dest / relative).parent.mkdir(parents=True, exist_ok=True)
        (dest / relative).write_text(text, encoding="utf-8")
        written.append(relative)
    graded = totals(collect(dest / "tests" / "graded", dest))
    if graded != labs_total:  # e.g. a graded test reads a file the release left out
        raise ReleaseError(f"the release's grader collects {graded}, the course's {labs_total}")
    return sorted(written)


def main(dest: str) -> int:
    try:
        written = write_student_release(Path(dest).expanduser().resolve())
    except ReleaseError as error:
        print(f"release --student: {error}", file=sys.stderr)
        return 1
    print(f"student release written to {dest} ({len(written)} files, no solutions/); "
          "STUDENT_RELEASE.md in it says what differs")
    return 0
