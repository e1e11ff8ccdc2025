"""The code examples of the documentation site (docs/*.md), as the tests run them.

A page is a story: its ```python blocks run in order in one namespace, in a fresh
working directory, so a block may use what an earlier one made. ```console blocks run
their ``$ execnet ...`` lines as the installed command (``$ pip ...`` lines are the
reader's installation step and are not run). Examples that reach a host over ssh
write ``ssh=example-host``; the tests replace that with the throwaway sshd's spec.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List

DOCS = Path(__file__).resolve().parents[1] / "docs"
SSH_PLACEHOLDER = "ssh=example-host"

_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})(?P<info>[^`\n]*)$")


@dataclass
class Block:
    page: Path
    line: int  # 1-based line of the first code line
    language: str
    code: str


def pages() -> List[Path]:
    """Every page of the site (docs/**/*.md outside _build and _generated)."""
    return sorted(
        path
        for path in DOCS.rglob("*.md")
        if not {"_build", "_generated"} & set(path.relative_to(DOCS).parts)
        and path.name not in {"CONTRACTS.md", "README.md"}
    )


def blocks(page: Path) -> Iterator[Block]:
    """The fenced code blocks of *page* whose language is python or console."""
    lines = page.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        match = _FENCE.match(lines[index])
        if not match:
            index += 1
            continue
        fence, info = match["fence"], match["info"].strip()
        body: List[str] = []
        index += 1
        start = index + 1
        while index < len(lines) and not lines[index].strip().startswith(fence):
            body.append(lines[index])
            index += 1
        index += 1
        language = info.split()[0] if info else ""
        if language in ("python", "console"):
            yield Block(page, start, language, "\n".join(body) + "\n")


def console_commands(block: Block) -> List[str]:
    """The ``$ `` lines of a console block that the tests run (not installation steps)."""
    commands = []
    for line in block.code.splitlines():
        if line.startswith("$ "):
            command = line[2:].strip()
            if not command.startswith(("pip ", "python -m pip ", "hatch ")):
                commands.append(command)
    return commands
