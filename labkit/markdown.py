"""Just enough Markdown: fenced code blocks (with the line they open on) and the prose around them."""
from __future__ import annotations

import re
from dataclasses import dataclass

FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>.*)$")


@dataclass(frozen=True)
class Block:
    path: str
    line: int
    info: str
    code: str

    @property
    def runnable(self) -> bool:
        words = self.info.split()
        return len(words) >= 2 and words[0] in ("bash", "sh", "shell") and "runnable" in words[1:]


def split_fences(text: str, path: str = "<text>") -> tuple[list[Block], str]:
    """The fenced code blocks of a Markdown text, and the text without them (the prose)."""
    blocks: list[Block] = []
    prose: list[str] = []
    opening = None
    lines: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        match = FENCE.match(line)
        if opening is None:
            if match:
                opening = (number, match["fence"], match["info"].strip())
                lines = []
            else:
                prose.append(line)
        elif match and match["fence"][0] == opening[1][0] and len(match["fence"]) >= len(opening[1]) \
                and not match["info"].strip():
            blocks.append(Block(path, opening[0], opening[2], "\n".join(lines) + "\n"))
            opening = None
        else:
            lines.append(line)
    return blocks, "\n".join(prose) + "\n"


def fenced_blocks(text: str, path: str = "<text>") -> list[Block]:
    """Every fenced code block of a Markdown text, with the line its fence opens on."""
    return split_fences(text, path)[0]
