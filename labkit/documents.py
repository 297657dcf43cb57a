"""The graded requirements written into the documents, from labkit.requirements (the one source).

Two kinds of generated blocks, each between HTML comments a reader does not see:

    <!-- requirements:begin --> ... <!-- requirements:end -->
        the table of requirements and points: of the README's own lab in `solutions/NN-topic/README*.md`
        (release copies it into exercises/), of every lab in the week plans;
    <!-- points:begin --> ... <!-- points:end -->
        a hand-written table whose rows name a lab (`01-docker`): their last cell becomes the lab's total.

`X.ru.md` gets the Russian lines of labkit/i18n/ru.yaml. `labkit release` rewrites the blocks;
`labkit release --check` lists the documents whose blocks are stale or missing.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from fnmatch import fnmatchcase
from pathlib import Path

from labkit import i18n
from labkit.requirements import Requirement, totals

LAB_NAME = re.compile(r"\b\d\d-[a-z0-9]+(?:-[a-z0-9]+)*\b")
TAG_LIKE = re.compile(r"<(?=[A-Za-z/!?])")  # "<id>" would render as an HTML tag; "< 0.5 s" is fine
# Which generated blocks each document must hold (another document's blocks are refreshed if present).
REQUIRED = {
    "README.md": ("points",),
    "week/README.md": ("requirements", "points"),
    "week/README.ru.md": ("requirements", "points"),
    "solutions/*/README.md": ("requirements",),
    "solutions/*/README.ru.md": ("requirements",),
}
OPTIONAL = ("README.ru.md",)


class MissingBlock(ValueError):
    """A document lacks a generated block it must hold, or its markers do not pair."""


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:begin -->", f"<!-- {name}:end -->"


def language_of(path: Path) -> str:
    return "ru" if path.name.endswith(".ru.md") else i18n.ENGLISH


def escape(text: str) -> str:
    """Requirement text as a Markdown table cell: `|` and `<` escaped outside code spans."""
    parts = text.split("`")
    for index in range(0, len(parts), 2):
        parts[index] = TAG_LIKE.sub(r"\\<", parts[index].replace("|", r"\|"))
    return "`".join(parts)


def line_of(r: Requirement, lang: str) -> str:
    return i18n.requirement(r.lab, f"{r.test}[{r.param}]" if r.param else r.test, r.text, lang)


def lab_table(rows: Sequence[Requirement], lab: str, lang: str) -> str:
    """| requirement | points | of one lab, with its total."""
    say = i18n.sayer(lang)
    mine = [r for r in rows if r.lab == lab]
    lines = [f"| {say('requirement')} | {say('points')} |", "|---|---|"]
    lines += [f"| {escape(line_of(r, lang))} | {r.points:g} |" for r in mine]
    lines.append(f"| **{say('total')}** | **{totals(mine).get(lab, 0):g}** |")
    return "\n".join(lines)


def week_tables(rows: Sequence[Requirement], lang: str) -> str:
    """Every lab's table, each under a line naming the lab, its exercise folder and its points."""
    say = i18n.sayer(lang)
    parts = []
    for lab, points in totals(rows).items():
        parts.append(f"**{lab}** — [`exercises/{lab}/`](../exercises/{lab}/) — {say('points')}: {points:g}\n\n"
                     + lab_table(rows, lab, lang))
    total = sum(totals(rows).values())
    parts.append(f"{say('points in all')}: **{total:g}**")
    return "\n\n".join(parts)


def with_points(table: str, sums: dict[str, float]) -> str:
    """A hand-written table whose rows naming a lab get the lab's total as their last cell."""
    out = []
    for line in table.split("\n"):
        labs = [name for name in LAB_NAME.findall(line) if name in sums]
        if line.lstrip().startswith("|") and labs:
            cells = line.rstrip().rstrip("|").split("|")
            cells[-1] = f" {sums[labs[0]]:g} "
            line = "|".join(cells) + "|"
        out.append(line)
    return "\n".join(out)


def replace_block(text: str, name: str, render) -> str:
    """`text` with each `name` block's inside replaced by render(old inside)."""
    begin, end = markers(name)
    pattern = re.compile(re.escape(begin) + r"\n?(.*?)\n?" + re.escape(end), re.DOTALL)
    if text.count(begin) != text.count(end):
        raise MissingBlock(f"unpaired {begin} / {end}")
    return pattern.sub(lambda m: f"{begin}\n{render(m[1])}\n{end}", text)


def render(text: str, relative: str, rows: Sequence[Requirement]) -> str:
    """The document's text with its generated blocks up to date."""
    path = Path(relative)
    lang = language_of(path)
    for pattern, names in REQUIRED.items():
        if fnmatchcase(relative, pattern):
            missing = [n for n in names if markers(n)[0] not in text]
            if missing:
                raise MissingBlock(f"no {' and no '.join(markers(n)[0] for n in missing)} block")
    lab = path.parent.name if LAB_NAME.fullmatch(path.parent.name) else None
    if lab is not None and lab not in totals(rows):
        raise MissingBlock(f"no graded test belongs to lab {lab}")
    table = (lambda _: lab_table(rows, lab, lang)) if lab else (lambda _: week_tables(rows, lang))
    text = replace_block(text, "requirements", table)
    return replace_block(text, "points", lambda old: with_points(old, totals(rows)))


def documents(root: Path) -> list[Path]:
    """The documents that hold (or must hold) generated blocks, relative to root."""
    found = {p for pattern in [*REQUIRED, *OPTIONAL] for p in root.glob(pattern) if p.is_file()}
    return sorted(p.relative_to(root) for p in found)


def sync(root: Path, rows: Sequence[Requirement], write: bool) -> list[str]:
    """Bring every document's blocks up to date (write) or list the stale ones; returns problems."""
    problems = []
    for relative in documents(root):
        path = root / relative
        text = path.read_text(encoding="utf-8")
        try:
            fresh = render(text, relative.as_posix(), rows)
        except MissingBlock as error:
            problems.append(f"{relative}: {error}")
            continue
        if fresh != text:
            if write:
                path.write_text(fresh, encoding="utf-8")
            else:
                problems.append(f"{relative}: the generated requirements/points are stale")
    return problems
