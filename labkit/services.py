"""The service code `make up`, `make bench*` and notebooks 04 and 06 build.

In the course's repository that is the reference in solutions/. A student release (`labkit release
--student`) has no solutions/, and builds the student's own exercises/04-flask-serving and
exercises/05-celery instead: a reference service would be its answers. So before building, say which
tree is built, and stop with the command to run first while those labs are not started.

    python -m labkit.services [LAB ...]   # exit 1, with the reason, when the service cannot be built yet
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVICE_LABS = ("04-flask-serving", "05-celery")


def service_tree(root: Path = ROOT) -> Path:
    """solutions/ when the repository has it, else exercises/ (a student release)."""
    return root / "solutions" if (root / "solutions").is_dir() else root / "exercises"


def unfinished(labs: tuple[str, ...] = SERVICE_LABS, root: Path = ROOT) -> list[str]:
    """The labs a student release would build from stubs (none in the course's repository)."""
    from labkit.progress import started

    tree = service_tree(root)
    if tree.name == "solutions":
        return []
    return [lab for lab in labs if not started(lab, tree / lab)]


def preflight(labs: tuple[str, ...] = SERVICE_LABS, root: Path = ROOT) -> int:
    if service_tree(root).name == "solutions":
        return 0
    print(f"This is a student release (no solutions/): the service is built from YOUR "
          f"{', '.join(f'exercises/{lab}' for lab in labs)}.")
    missing = unfinished(labs, root)
    if missing:
        numbers = ",".join(lab[:2] for lab in missing)
        print(f"Not started yet: {', '.join(missing)}. Solve them first and check with `make grade LAB={numbers}`;"
              " then this command runs your own service.")
        return 1
    print(f"It works as far as your labs do: `make grade LAB={','.join(lab[:2] for lab in labs)}` says what does not.")
    return 0


if __name__ == "__main__":
    sys.exit(preflight(tuple(sys.argv[1:]) or SERVICE_LABS))
