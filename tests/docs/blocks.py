"""The code blocks of the README and the docs, and how the suite treats each one.

A block's treatment is set by a marker on the line before it (blank lines between allowed):
``.. docs-test: <kind> [reason]`` in reStructuredText, ``<!-- docs-test: <kind> [reason] -->`` in
Markdown. Without a marker a console, bash or Python block is run as it stands. Kinds:

``run``        the default: a Python block is executed, a console block's ``$`` commands run in bash.
``pytest``     a Python block of test functions, run by pytest as a test module of a project laid
               out as ``docs/simulator.rst`` shows (``dags/`` holds the quick start's DAG).
``pytest-setup`` commands run in that project before pytest.
``simulator``  a console block that talks to a simulator at the port it names, started for it.
``install``    run in a fresh virtual environment by ``tests/docs/test_install.py``.
``skip``       not run; the reason (required) says why it cannot run offline. Python is still
               parsed, so its syntax cannot rot.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KINDS = frozenset({"run", "pytest", "pytest-setup", "simulator", "install", "skip"})
CODE_LANGUAGES = frozenset({"console", "bash", "sh", "python"})

_RST_DIRECTIVE = re.compile(r"^(?P<indent>\s*)\.\. code-block::\s*(?P<lang>\S+)\s*$")
_RST_MARKER = re.compile(r"^\s*\.\. docs-test:\s*(?P<spec>.*?)\s*$")
_MD_FENCE = re.compile(r"^```(?P<lang>\S*)\s*$")
_MD_MARKER = re.compile(r"^\s*<!--\s*docs-test:\s*(?P<spec>.*?)\s*-->\s*$")


@dataclass(frozen=True)
class Block:
    """One code block: where it is, its language, its marker and its text (dedented)."""

    path: Path
    line: int
    language: str
    kind: str
    reason: str
    text: str

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    def commands(self) -> str:
        """
        The block as a bash script: a console block's ``$`` lines with their continuations (a
        trailing backslash, an open quote), or every line when it shows no prompt.
        """
        if self.language != "console" or not any(line.startswith("$ ") for line in self.text.splitlines()):
            return self.text
        lines: list[str] = []
        going_on = in_quote = False
        for line in self.text.splitlines():
            if going_on:
                lines.append(line)
            elif line.startswith("$ "):
                lines.append(line[2:])
            else:
                continue  # output
            in_quote ^= line.count("'") % 2 == 1
            going_on = line.rstrip().endswith("\\") or in_quote
        return "\n".join(lines) + "\n"


def _marker(lines: list[str], index: int, pattern: re.Pattern[str]) -> str | None:
    """The marker spec on the nearest non-blank line before ``index``, if it is one."""
    i = index - 1
    while i >= 0 and not lines[i].strip():
        i -= 1
    match = pattern.match(lines[i]) if i >= 0 else None
    return match.group("spec") if match else None


def _block(path: Path, line: int, language: str, spec: str | None, text: str) -> Block:
    kind, _, reason = (spec or "run").partition(" ")
    return Block(path, line, language, kind, reason.strip(), text)


def rst_blocks(path: Path) -> list[Block]:
    lines = path.read_text().splitlines()
    blocks = []
    for i, line in enumerate(lines):
        match = _RST_DIRECTIVE.match(line)
        if not match:
            continue
        indent = len(match.group("indent"))
        body: list[str] = []
        j = i + 1
        while j < len(lines) and (not lines[j].strip() or lines[j].startswith(" " * (indent + 1))):
            body.append(lines[j])
            j += 1
        while body and not body[-1].strip():
            body.pop()
        options = [b for b in body if b.strip().startswith(":") and not b.strip().startswith("::")]
        code = [b for b in body if b not in options or not b.strip()]
        width = min((len(b) - len(b.lstrip()) for b in code if b.strip()), default=0)
        text = "\n".join(b[width:] for b in code).strip("\n") + "\n"
        blocks.append(_block(path, i + 1, match.group("lang"), _marker(lines, i, _RST_MARKER), text))
    return blocks


def md_blocks(path: Path) -> list[Block]:
    lines = path.read_text().splitlines()
    blocks, i = [], 0
    while i < len(lines):
        match = _MD_FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        end = i + 1
        while end < len(lines) and not lines[end].startswith("```"):
            end += 1
        text = "\n".join(lines[i + 1 : end]) + "\n"
        blocks.append(_block(path, i + 1, match.group("lang"), _marker(lines, i, _MD_MARKER), text))
        i = end + 1
    return blocks


def all_blocks() -> list[Block]:
    """Every code block in README.md and docs/ (Markdown and reStructuredText)."""
    blocks = md_blocks(ROOT / "README.md")
    for path in sorted((ROOT / "docs").glob("*.rst")):
        blocks += rst_blocks(path)
    for path in sorted((ROOT / "docs").glob("*.md")):
        blocks += md_blocks(path)
    return blocks


def code_blocks(kind: str | None = None) -> list[Block]:
    """The console, bash and Python blocks, of one kind if given."""
    found = [b for b in all_blocks() if b.language in CODE_LANGUAGES]
    return [b for b in found if kind is None or b.kind == kind]
