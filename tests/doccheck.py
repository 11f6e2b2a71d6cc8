"""Run the shell sessions shown in the project's Markdown files and compare their output with what the docs say.

A session is a fenced block with lines that start with `$ ` (a command, continued by a trailing backslash) followed
by the output the command prints. Each document's sessions run in order, in one scratch directory per document
that sees the repository's `examples/`, `tests/` and `benchmarks/` folders, so a later command can read what an
earlier one wrote. In the expected output a line that is only `...` stands for any number of lines, and `...`
inside a line for any text, so a doc can elide what varies (timings, paths). Directives in an HTML comment on the
line before a block:

    <!-- doccheck: skip REASON -->    the block is not run (say why: a GPU, a hub model, a measurement)
    <!-- doccheck: no-output -->      the commands are run and must succeed; their output is not compared
    <!-- doccheck: setup COMMAND -->  COMMAND runs first (it must succeed), unseen: what the text around the
                                      block says was done before it (a build, a server started elsewhere)
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ("examples", "tests", "benchmarks")
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
FENCE = re.compile(r"^(`{3,})[\w+-]*\s*$")
DIRECTIVE = re.compile(r"<!--\s*doccheck:\s*(skip|no-output|setup)\b\s*(.*?)\s*-->")


@dataclass
class Command:
    line: int  # 1-based line of the `$ ` in the document
    text: str
    expected: list[str] = field(default_factory=list)


@dataclass
class Session:
    doc: Path
    line: int  # the opening fence's line
    commands: list[Command]
    skip: str | None = None  # the reason, when the block is not run
    compare: bool = True
    setup: str | None = None  # a command run before the block, whose output is not shown


def sessions(doc: Path) -> list[Session]:
    """Every fenced block of `doc` that holds at least one `$ ` command."""
    lines = doc.read_text(encoding="utf-8").splitlines()
    found: list[Session] = []
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        start, ticks = i, opening.group(1)
        i += 1
        body: list[tuple[int, str]] = []
        while i < len(lines) and lines[i].strip() != ticks:
            body.append((i + 1, lines[i]))
            i += 1
        i += 1
        commands = _commands(body)
        if not commands:
            continue
        directive = DIRECTIVE.search(lines[start - 1]) if start > 0 else None
        session = Session(doc, start + 1, commands)
        if directive and directive.group(1) == "skip":
            session.skip = directive.group(2) or "no reason given"
        elif directive and directive.group(1) == "setup":
            session.setup = directive.group(2)
        elif directive:
            session.compare = False
        found.append(session)
    return found


def _commands(body: list[tuple[int, str]]) -> list[Command]:
    commands: list[Command] = []
    continuing = False
    for lineno, text in body:
        if continuing:
            commands[-1].text += "\n" + text
            continuing = text.endswith("\\")
        elif text.startswith("$ "):
            commands.append(Command(lineno, text[2:]))
            continuing = text.endswith("\\")
        elif commands:
            commands[-1].expected.append(text)
    return commands


def scratch_dir(doc: Path, base: Path) -> Path:
    """A working directory for one document's sessions, with the repository's shared folders linked in."""
    work = base / doc.stem
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    for name in SHARED:
        (work / name).symlink_to(ROOT / name)
    return work


def run_command(command: Command, cwd: Path, previous_status: int, timeout_s: float) -> tuple[int, str]:
    """(exit status, stdout and stderr as the terminal would show them) of one documented command."""
    env = dict(os.environ, NO_COLOR="1", COLUMNS="110", HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT))
    script = f"(exit {previous_status}); {command.text}"  # so a documented `echo $?` sees the last status
    proc = subprocess.run(
        ["bash", "-c", script],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout_s,
    )
    return proc.returncode, ANSI.sub("", proc.stdout)


def _line_matches(expected: str, actual: str) -> bool:
    if "..." not in expected:
        return expected == actual
    pattern = ".*".join(re.escape(part) for part in expected.split("..."))
    return re.fullmatch(pattern, actual) is not None


def output_matches(expected: list[str], actual: list[str]) -> bool:
    """Whether `actual` is `expected` with each `...` line standing for any run of lines (trailing blanks ignored)."""
    expected = [e.rstrip() for e in expected]
    actual = [a.rstrip() for a in actual]
    while expected and not expected[-1]:
        expected.pop()
    while actual and not actual[-1]:
        actual.pop()
    # memoised match of expected[i:] against actual[j:]
    memo: dict[tuple[int, int], bool] = {}

    def match(i: int, j: int) -> bool:
        key = (i, j)
        if key in memo:
            return memo[key]
        if i == len(expected):
            result = j == len(actual)
        elif expected[i].strip() == "...":
            result = any(match(i + 1, k) for k in range(j, len(actual) + 1))
        else:
            result = j < len(actual) and _line_matches(expected[i], actual[j]) and match(i + 1, j + 1)
        memo[key] = result
        return result

    return match(0, 0)


def first_difference(expected: list[str], actual: list[str]) -> str:
    """A short human-readable hint of where two outputs part (for a failing test's message)."""
    for n, (e, a) in enumerate(zip(expected, actual, strict=False), start=1):
        if e.strip() != "..." and not _line_matches(e.rstrip(), a.rstrip()):
            return f"output line {n}: docs say {e!r}, command printed {a!r}"
    return f"docs show {len(expected)} lines, command printed {len(actual)}"
