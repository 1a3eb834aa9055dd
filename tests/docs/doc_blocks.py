"""The code blocks of the README and of examples/*.md, and how the doc tests run them.

A fenced block whose language is ``python``, ``bash``, ``sh`` or ``shell`` is run; a
``toml`` block is a spec, read with ``load_spec``. A block may say in a comment what it takes
as given: ``# placeholders: trainer, exports/2026-11/`` (continued on the following comment
lines, up to the first blank comment or code line); the tests supply each name. An HTML
comment ``<!-- doc-test: syntax only: REASON -->`` right before a block has it compiled
(``python``) or checked with ``bash -n`` only, for the reason given.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUN_LANGUAGES = {"python": "python", "bash": "shell", "sh": "shell", "shell": "shell"}

_FENCE = re.compile(r"^```(\w*)\s*$")
_SYNTAX_ONLY = re.compile(r"<!--\s*doc-test:\s*syntax only:\s*(.*?)-->", re.S)
_PLACEHOLDERS = re.compile(r"^#\s*placeholders:\s*(.*)$")


@dataclasses.dataclass(frozen=True)
class Block:
    """One fenced code block."""

    path: Path
    line: int  # of the opening fence, 1-based
    language: str  # "python", "shell" or "toml"
    code: str
    syntax_only: str | None  # the reason, when only its syntax is checked

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def placeholders(self) -> list[str]:
        """The names the block takes as given, in order."""
        names: list[str] = []
        lines = self.code.splitlines()
        for index, line in enumerate(lines):
            found = _PLACEHOLDERS.match(line.strip())
            if not found:
                continue
            text = found.group(1)
            for more in lines[index + 1 :]:
                more = more.strip()
                if not more.startswith("#") or not more[1:].strip():
                    break
                text += " " + more[1:].strip()
            text = _without_parentheses(text)  # drop the explanations
            names.extend(part.strip() for part in text.split(",") if part.strip())
        return names


def _without_parentheses(text: str) -> str:
    kept, depth = [], 0
    for char in text:
        depth += char == "("
        if depth == 0:
            kept.append(char)
        depth -= char == ")" and depth > 0
    return "".join(kept)


def documents() -> list[Path]:
    """The README and every Markdown file under examples/."""
    return [ROOT / "README.md", *sorted((ROOT / "examples").rglob("*.md"))]


def blocks_of(path: Path) -> list[Block]:
    """The runnable and TOML blocks of one Markdown file, in order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    index = 0
    while index < len(lines):
        fence = _FENCE.match(lines[index])
        if not fence:
            index += 1
            continue
        start = index
        end = start + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        language = fence.group(1).lower()
        kind = RUN_LANGUAGES.get(language) or ("toml" if language == "toml" else None)
        if kind is not None:
            before = "\n".join(lines[max(0, start - 4) : start])
            marker = _SYNTAX_ONLY.search(before)
            reason = " ".join(marker.group(1).split()) if marker else None
            code = "\n".join(lines[start + 1 : end]) + "\n"
            found.append(Block(path, start + 1, kind, code, reason))
        index = end + 1
    return found


def all_blocks() -> list[Block]:
    """Every block of every document."""
    return [block for path in documents() for block in blocks_of(path)]


def shell_commands(code: str) -> list[str]:
    """The commands of a shell block: continuations joined, comments dropped, split on &&."""
    joined = re.sub(r"\\\n\s*", " ", code)
    commands: list[str] = []
    for line in joined.splitlines():
        line = re.sub(r"(^|\s)#.*$", "", line).strip()
        if line:
            commands.extend(part.strip() for part in line.split("&&") if part.strip())
    return commands
