"""The graded requirements, from the one source: the graded tests as pytest collects them.

`collect()` runs `pytest tests/graded --collect-only` in a subprocess with this module as a plugin
(no Docker needed, nothing imported into the caller): one row per collected item, parametrized ones
included, with its lab, points and requirement (the first line of the test's docstring, thresholds
written in it). `labkit release` renders the rows into the documents (labkit.documents).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GRADED = ROOT / "tests" / "graded"


@dataclass(frozen=True)
class Requirement:
    lab: str
    test: str    # the test function's name: the key of the translations (labkit/i18n/<lang>.yaml)
    param: str   # the parametrized item's id ("redis"), or ""
    points: float
    text: str    # English: the first line of the docstring


class CollectionError(RuntimeError):
    """pytest could not collect the graded tests (a syntax error, an import error)."""


@lru_cache(maxsize=4)  # one collection per process: the graded tests do not change while it runs
def collect(graded: Path = GRADED, root: Path = ROOT) -> tuple[Requirement, ...]:
    """Every graded item, in collection order (lab by lab, as the grader runs them), with the labkit of `root`."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "requirements.json"
        command = [sys.executable, "-m", "pytest", str(graded), "--collect-only", "-q", "-p", "labkit.requirements",
                   "--requirements-json", str(out), "-p", "no:warnings"]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
        result = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=120, env=env)
        if result.returncode != 0 or not out.is_file():
            raise CollectionError(f"pytest could not collect {graded}:\n{result.stdout[-3000:]}{result.stderr[-2000:]}")
        return tuple(Requirement(**row) for row in json.loads(out.read_text()))


def totals(requirements: Iterable[Requirement]) -> dict[str, float]:
    """Points per lab."""
    sums: dict[str, float] = {}
    for r in requirements:
        sums[r.lab] = sums.get(r.lab, 0.0) + r.points
    return sums


def of_item(item) -> Requirement | None:
    """The requirement a collected pytest item grades (None: not a graded test)."""
    points, lab = item.get_closest_marker("points"), item.get_closest_marker("lab")
    if points is None or lab is None:
        return None
    from labkit.grading import requirement_of

    callspec = getattr(item, "callspec", None)
    return Requirement(lab=lab.args[0], test=getattr(item, "originalname", item.name),
                       param=callspec.id if callspec else "", points=float(points.args[0]),
                       text=requirement_of(item))


# ---- the pytest plugin side (loaded with `-p labkit.requirements` by collect())

def pytest_addoption(parser) -> None:
    parser.addoption("--requirements-json", default=None, help="write the collected graded requirements here")


def pytest_collection_finish(session) -> None:
    out = session.config.getoption("--requirements-json")
    if out:
        rows = [asdict(r) for r in map(of_item, session.items) if r is not None]
        Path(out).write_text(json.dumps(rows, ensure_ascii=False, indent=1))
