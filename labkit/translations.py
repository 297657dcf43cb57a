"""English student-facing documents and their Russian twins (X.md beside X.ru.md), kept in step.

A twin is a translation, so the two cannot be compared word by word; what a translation must not
change is compared instead, as a "skeleton" of each text:
- the heading levels, in order;
- the fenced code blocks, in order, with `#` comments left out (a comment may be translated) and, in
  a plain block (a file tree, a list of commands), only the path, or the command before the first run
  of two spaces, on each line (the description after it may be translated); in a mermaid diagram, its
  shape without the labels;
- the inline code spans (commands, file names, variables, statuses), as a set;
- the link targets, as a set;
(in both, X.ru.md counts as X.md and notebooks/ru/ as notebooks/: a Russian text names the Russian twins)
- the numbers of two digits or more in the prose (ports, points, thresholds, sizes), as a set; "1,000"
  and "1000" are one number, "0,1" and "0.1" too.
A generated requirements table (between the REQUIREMENTS markers) is left out of both: it comes from
one catalogue per language, not from this text.
"""
from __future__ import annotations

import re
from pathlib import Path

from labkit.markdown import split_fences

ROOT = Path(__file__).resolve().parent.parent
# The student's path. week/INSTRUCTORS.md stays English (for instructors); week/glossary.md is both.
ENGLISH_DOCUMENTS = ("README.md", "week/README.md", "week/errata.md", "week/lectures/*.md",
                     "labs/*/README.md", "solutions/*/README.md", "exercises/*/README.md")
GLOSSARY = ROOT / "week" / "glossary.md"
REQUIREMENTS = re.compile(r"<!-- requirements:begin -->.*?<!-- requirements:end -->", re.DOTALL)
HEADING = re.compile(r"^(#{1,6})\s", re.MULTILINE)
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
LINK = re.compile(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
COMMENT = re.compile(r"(?:^|\s)#\s.*$")
LABEL = re.compile(r'"[^"]*"|\[[^\]"]*\]|\(\[[^\]]*\]\)')
TREE_PREFIX = re.compile(r"^[\s│├└─]*")
THOUSANDS = re.compile(r"\b(\d{1,3}(?:,\d{3})+)(?![\d,])")
DECIMAL_COMMA = re.compile(r"(\d),(\d)")
NUMBER = re.compile(r"\d+(?:\.\d+)*")


def russian_twin(english: Path) -> Path:
    return english.with_name(english.stem + ".ru.md")


def english_documents() -> list[Path]:
    return sorted({p for pattern in ENGLISH_DOCUMENTS for p in ROOT.glob(pattern)
                   if p.is_file() and not p.name.endswith(".ru.md")})


def russian_documents() -> list[Path]:
    return sorted(ROOT.glob("**/*.ru.md"))


def english_name(name: str) -> str:
    """The English counterpart of a file a Russian text names."""
    return name.replace(".ru.md", ".md").replace("notebooks/ru/", "notebooks/")


def code_line(line: str, info: str) -> str:
    if info == "mermaid":  # a diagram: its shape, not its labels
        return LABEL.sub("", line).rstrip()
    line = COMMENT.sub("", line).rstrip()
    if not info:  # a tree or a command list: the path or command before its description
        prefix = TREE_PREFIX.match(line)[0]
        entry = re.split(r"\s{2,}", line[len(prefix):], maxsplit=1)[0]
        first = entry.split(" ", 1)[0]
        line = prefix + (first if "/" in first or "." in first else entry)  # a path: its description may touch it
    return line


def prose_numbers(prose: str) -> set[str]:
    prose = THOUSANDS.sub(lambda m: m[1].replace(",", ""), prose)
    prose = DECIMAL_COMMA.sub(r"\1.\2", prose)
    return {n for n in NUMBER.findall(prose) if len(n.replace(".", "")) >= 2}


def skeleton(text: str) -> dict[str, object]:
    """What a translation keeps from `text` (see the module's docstring)."""
    text = REQUIREMENTS.sub("<!-- requirements -->", text)
    blocks, prose = split_fences(text)
    links = {english_name(target.split("#")[0]) for target in LINK.findall(prose)} - {""}
    spans = {english_name(m[2].strip()) for m in CODE_SPAN.finditer(prose)}
    bare = LINK.sub("]", CODE_SPAN.sub(" ", prose))
    return {
        "headings": [len(h) for h in HEADING.findall(prose)],
        "code blocks": [(b.info, "\n".join(code_line(l, b.info) for l in b.code.splitlines()))
                        for b in blocks],
        "inline code": spans,
        "links": links,
        "numbers": prose_numbers(bare),
        "requirements tables": text.count("<!-- requirements -->"),
    }


def skeleton_differences(english: str, russian: str) -> list[str]:
    """How the Russian text's skeleton differs from the English one's: one readable line per difference."""
    en, ru = skeleton(english), skeleton(russian)
    problems: list[str] = []
    for part in en:
        left, right = en[part], ru[part]
        if left == right:
            continue
        if isinstance(left, set):
            problems.append(f"{part}: only in English {sorted(left - right)}; only in Russian {sorted(right - left)}")
        elif part == "code blocks" and len(left) == len(right):
            for number, (a, b) in enumerate(zip(left, right), 1):
                if a != b:
                    problems.append(f"code block {number} differs:\n--- English\n{a[1]}\n--- Russian\n{b[1]}")
        else:
            problems.append(f"{part}: English {left}, Russian {right}")
    return problems


def first_link(text: str) -> str | None:
    match = LINK.search(split_fences(text)[1])
    return match[1] if match else None


def calques() -> list[tuple[str, str]]:
    """(calque, what to write instead) rows of the glossary's table under the heading "Так не пишем"."""
    text = GLOSSARY.read_text()
    section = text.split("Так не пишем", 1)[1] if "Так не пишем" in text else ""
    rows = re.findall(r"^\|\s*([^|`]+?)\s*\|\s*([^|]+?)\s*\|", section, re.MULTILINE)
    return [(bad, good) for bad, good in rows if not set(bad) <= set("-: ") and bad.lower() != "не пишем"]
