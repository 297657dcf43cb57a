"""Prose cannot drift from code: every fenced block marked ```bash runnable in README.md, week/**/*.md,
labs/*/README.md and solutions/*/README.md is run (bash -euo pipefail, from the repository root,
with .venv/bin first on PATH) and must exit 0 within its time limit.

Mark a block runnable only when it is cheap (well under a minute) and safe: it leaves nothing behind
(a block that starts a container or a stack removes it itself, also on failure: use `trap`), uses
no fixed port that `make up` needs, and needs nothing that an earlier block left.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from labkit.markdown import Block, fenced_blocks
from labkit.engine import builder_env

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = ("README.md", "week/**/*.md", "labs/*/README.md", "solutions/*/README.md")
TIMEOUT = 90  # seconds per block


def documents() -> list[Path]:
    # A Russian twin's code blocks are its English original's (tests/test_translations.py): run them once.
    return sorted({p for pattern in DOCUMENTS for p in ROOT.glob(pattern)
                   if p.is_file() and not p.name.endswith(".ru.md")})


def runnable_blocks() -> list[Block]:
    return [b for doc in documents() for b in fenced_blocks(doc.read_text(), str(doc.relative_to(ROOT)))
            if b.runnable]


def test_the_block_parser_finds_runnable_blocks_only():
    """Only ```bash runnable blocks count; other fences (also longer or tilde ones) are left alone."""
    text = ("# t\n```bash\nmake up\n```\n````bash runnable\necho ```\necho one\n````\n"
            "~~~python\nprint(1)\n~~~\n```bash runnable\necho two\n```\n")
    blocks = fenced_blocks(text)
    assert [b.info for b in blocks] == ["bash", "bash runnable", "python", "bash runnable"]
    assert [(b.line, b.code) for b in blocks if b.runnable] == [(5, "echo ```\necho one\n"), (12, "echo two\n")]


def test_the_documents_have_runnable_blocks():
    """The week's documents carry runnable blocks (the check below cannot pass by finding none)."""
    assert any(b.path.startswith("week/") for b in runnable_blocks())


@pytest.mark.parametrize("block", runnable_blocks(), ids=lambda b: f"{b.path}:{b.line}")
def test_a_runnable_block_exits_0(block):
    """The block runs from the repository root and exits 0."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           **builder_env()}
    # Its own process group: on a time-out the block's children (docker run, servers) go too.
    process = subprocess.Popen(["bash", "-euo", "pipefail", "-c", block.code], cwd=ROOT, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGTERM)
        process.communicate(timeout=30)
        pytest.fail(f"{block.path}:{block.line}: still running after {TIMEOUT} s:\n{block.code}")
    assert process.returncode == 0, (
        f"{block.path}:{block.line} exited {process.returncode}\n--- block\n{block.code}"
        f"--- stdout\n{stdout[-2000:]}\n--- stderr\n{stderr[-2000:]}")

