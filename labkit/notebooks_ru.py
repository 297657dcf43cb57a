"""The Russian notebooks (notebooks/ru/) are the English ones with Russian markdown.

Code cells, their outputs and the notebook metadata are the English notebook's, byte for byte: only
one set is executed (nbval runs notebooks/, not notebooks/ru/) and the outputs are shared. Cells are
matched by their id, which the Russian copy keeps. After an English notebook changes (re-executed,
a code cell edited, a markdown cell added), `labkit notebooks-ru` rewrites each Russian notebook from
the English one, keeping the Russian markdown of every cell id it already has; a markdown cell that
is new in English is copied in English and reported, to be translated by hand.
"""
from __future__ import annotations

import copy
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
ENGLISH = ROOT / "notebooks"
RUSSIAN = ENGLISH / "ru"
CYRILLIC = re.compile("[А-Яа-яЁё]")


def notebook_pairs() -> list[tuple[Path, Path]]:
    """(English, Russian) paths for every notebook of the week."""
    return [(english, RUSSIAN / english.name) for english in sorted(ENGLISH.glob("[0-9][0-9]_*.ipynb"))]


def read(path: Path):
    return nbformat.read(path, as_version=4)


def differences(english, russian) -> list[str]:
    """What makes `russian` not the translation of `english`: one line per problem, naming the cell."""
    problems: list[str] = []
    english_ids = [cell.get("id") for cell in english.cells]
    russian_ids = [cell.get("id") for cell in russian.cells]
    if english_ids != russian_ids:
        missing = [i for i in english_ids if i not in russian_ids]
        extra = [i for i in russian_ids if i not in english_ids]
        problems.append(f"the cells differ: {len(english_ids)} in English, {len(russian_ids)} in Russian"
                        f"{'; missing ids ' + ', '.join(map(str, missing)) if missing else ''}"
                        f"{'; ids not in English ' + ', '.join(map(str, extra)) if extra else ''}"
                        f"{'; same ids, other order' if not missing and not extra else ''}")
        return problems
    for number, (en, ru) in enumerate(zip(english.cells, russian.cells), 1):
        where = f"cell {number} (id {en.get('id')}, {en.cell_type})"
        if en.cell_type != ru.cell_type:
            problems.append(f"{where}: is a {ru.cell_type} cell in Russian")
        elif en.cell_type == "code":
            if en.source != ru.source:
                problems.append(f"{where}: the code differs; first differing line: "
                                f"{first_difference(en.source, ru.source)}")
            elif en != ru:
                problems.append(f"{where}: the same code, other outputs or metadata (re-executed English?)")
        elif en.cell_type == "markdown" and not CYRILLIC.search(ru.source):
            problems.append(f"{where}: not translated yet: {en.source.splitlines()[0][:80]!r}")
    if english.metadata != russian.metadata:
        problems.append("the notebook metadata differs")
    return problems


def first_difference(left: str, right: str) -> str:
    for number, (a, b) in enumerate(zip(left.splitlines(), right.splitlines()), 1):
        if a != b:
            return f"line {number}: English {a!r}, Russian {b!r}"
    return f"English has {len(left.splitlines())} lines, Russian {len(right.splitlines())}"


def synced(english, russian=None):
    """The English notebook with the Russian markdown of every cell id `russian` has."""
    translated = {cell.get("id"): cell for cell in (russian.cells if russian else []) if cell.cell_type == "markdown"}
    result = copy.deepcopy(english)
    for index, cell in enumerate(result.cells):
        if cell.cell_type == "markdown" and cell.get("id") in translated:
            result.cells[index] = copy.deepcopy(translated[cell.get("id")])
    return result


def sync(check: bool = False) -> int:
    """Rewrite (or with check=True, only compare) every Russian notebook; 0 when all are in step."""
    status = 0
    RUSSIAN.mkdir(exist_ok=True)
    for english_path, russian_path in notebook_pairs():
        english = read(english_path)
        russian = read(russian_path) if russian_path.exists() else None
        name = russian_path.relative_to(ROOT)
        if not check:
            russian = synced(english, russian)
            nbformat.write(russian, russian_path)
        problems = differences(english, russian) if russian else ["missing"]
        for problem in problems:
            print(f"{name}: {problem}")
        status = status or bool(problems)
    if check and status:
        print("Run 'labkit notebooks-ru' to copy code and outputs from English, then translate what it lists.")
    return int(status)


if __name__ == "__main__":
    sys.exit(sync(check="--check" in sys.argv[1:]))
