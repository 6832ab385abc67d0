"""The code blocks of the README and the documentation pages, with what their markers say.

A runnable block (``bash``, ``sh``, ``python``, ``toml``) carries an HTML comment on the
line before its fence, which Markdown renderers do not show:

* ``<!-- run -->``: the tests run it in a small demo workspace (``./recpipe-home``, with
  ``.venv/bin/recpipe`` beside it), as written;
* ``<!-- run: writes -->``: the same, after every block that only reads the workspace,
  in document order, since it changes what the others would read;
* ``<!-- skip: REASON -->``: not run (a download, a server, hours of work, ...), for the
  reason given.

A ``toml`` block that runs is loaded as a configuration file. Blocks in other languages
(program output, folder trees) are not run; every block's ``recpipe ...`` lines are
checked against the command line (tests/docs/test_command_lines.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RUNNABLE = {"bash", "sh", "python", "toml"}
MARKER = re.compile(r"^<!--\s*(run|skip)(?::\s*(.*?))?\s*-->$")


@dataclass(frozen=True)
class Block:
    """One fenced code block: where it is, its language, its text and its marker."""

    path: str  # relative to the repository
    line: int  # the fence's line, 1-based
    language: str
    code: str
    action: str | None  # "run", "skip" or None (no marker)
    note: str  # "writes" for a run block that changes the workspace; the reason of a skip

    @property
    def id(self) -> str:
        return f"{self.path}:{self.line}"

    @property
    def writes(self) -> bool:
        return self.action == "run" and self.note == "writes"


def documents() -> list[Path]:
    """The README and every page of the documentation site."""
    pages = sorted(p for p in (REPO / "docs").rglob("*.md") if "hooks" not in p.parts)
    return [REPO / "README.md", *pages]


def blocks_of(path: Path, root: Path = REPO) -> list[Block]:
    """The fenced blocks of the Markdown file ``path`` (named relative to ``root``)."""
    lines = path.read_text().splitlines()
    found, i = [], 0
    while i < len(lines):
        fence = lines[i]
        if not fence.startswith("```"):
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        marker = MARKER.match(lines[i - 1].strip()) if i > 0 else None
        found.append(
            Block(
                path=str(path.relative_to(root)),
                line=i + 1,
                language=fence[3:].strip().split(" ")[0],
                code="\n".join(lines[i + 1 : end]) + "\n",
                action=marker.group(1) if marker else None,
                note=(marker.group(2) or "") if marker else "",
            )
        )
        i = end + 1
    return found


def all_blocks() -> list[Block]:
    return [block for path in documents() for block in blocks_of(path)]


def runnable_blocks() -> list[Block]:
    """The blocks in a runnable language, the ones that must carry a marker."""
    return [block for block in all_blocks() if block.language in RUNNABLE]
