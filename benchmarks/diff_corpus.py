"""Build a corpus of real function-level fix pairs from the git history of public Python projects.

For each commit whose subject says it fixes something (or reformats code), every function that exists before
and after the commit with a different text becomes one pair: the function before (rejected) and after
(chosen), dedented, with the repository, commit, path, function name and licence noted. The checks in
`tests/diff_corpus/checks.py` then run the diff engine over the pairs:

    python benchmarks/diff_corpus.py build GITDIR[=LICENCE] ... [--per-repo 40] [--out FILE]
    python benchmarks/diff_corpus.py check [FILE]

GITDIR is a git repository (a bare mirror is fine), named `owner+name/repo` as the search tool's `fetch`
stores it, or give `--repo-name` in the same order. The pairs are drawn in a seeded order, at most a few
per commit, so one large commit does not fill the corpus.
"""

from __future__ import annotations

import argparse
import ast
import gzip
import json
import random
import re
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "tests" / "diff_corpus" / "pairs.jsonl.gz"

FIX_SUBJECT = re.compile(r"\b(fix(es|ed)?|bug|bugfix|correct(s|ed)?|handle[sd]?|typo)\b", re.IGNORECASE)
FORMAT_SUBJECT = re.compile(
    r"\b(black|reformat\w*|format(ting)?|pyupgrade|isort|ruff|flake8|lint|style|whitespace|cleanup)\b",
    re.IGNORECASE,
)
MAX_FUNCTION_LINES = 80
PER_COMMIT = 3


def git(gitdir: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", f"--git-dir={gitdir}", *args], capture_output=True, text=True, errors="replace", check=False
    )
    return result.stdout if result.returncode == 0 else ""


def commits(gitdir: Path) -> list[tuple[str, str, str]]:
    """(sha, kind, subject) of the non-merge commits whose subject names a fix or a reformatting."""
    found = []
    for line in git(gitdir, "log", "--no-merges", "--format=%H%x00%s", "HEAD").splitlines():
        sha, _, subject = line.partition("\x00")
        if FIX_SUBJECT.search(subject):
            found.append((sha, "fix", subject))
        elif FORMAT_SUBJECT.search(subject):
            found.append((sha, "format", subject))
    return found


def functions(source: str) -> dict[str, str]:
    """Qualified name -> dedented source (decorators included) of every function of a module."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return {}
    lines = source.splitlines(keepends=True)
    found: dict[str, str] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef) and child.end_lineno is not None:
                    first = min([child.lineno] + [d.lineno for d in child.decorator_list])
                    if child.end_lineno - first < MAX_FUNCTION_LINES:
                        found.setdefault(name, textwrap.dedent("".join(lines[first - 1 : child.end_lineno])))
                visit(child, name + ".")

    visit(tree, "")
    return found


def pairs_of_commit(gitdir: Path, sha: str) -> list[tuple[str, str, str, str]]:
    """(path, function, before, after) for each function the commit changed in a non-test .py file."""
    changed = git(gitdir, "diff-tree", "-r", "--no-commit-id", "--name-status", f"{sha}^", sha)
    out = []
    for line in changed.splitlines():
        status, _, path = line.partition("\t")
        if status != "M" or not path.endswith(".py") or re.search(r"(^|/)(tests?|testing)(/|_)", path):
            continue
        before = functions(git(gitdir, "show", f"{sha}^:{path}"))
        after = functions(git(gitdir, "show", f"{sha}:{path}"))
        for name in sorted(before.keys() & after.keys()):
            if before[name] != after[name]:
                out.append((path, name, before[name], after[name]))
    return out


def build(sources: list[tuple[Path, str, str]], per_repo: int, seed: int) -> list[dict]:
    rows = []
    for gitdir, repo, licence in sources:
        rng = random.Random(f"{seed}:{repo}")
        candidates = commits(gitdir)
        rng.shuffle(candidates)
        taken = 0
        for sha, kind, subject in candidates:
            if taken >= per_repo:
                break
            found = pairs_of_commit(gitdir, sha)
            rng.shuffle(found)
            for path, name, before, after in found[:PER_COMMIT]:
                rows.append(
                    {
                        "repo": repo,
                        "licence": licence,
                        "commit": sha,
                        "commit_kind": kind,
                        "subject": subject[:120],
                        "path": path,
                        "function": name,
                        "before": before,
                        "after": after,
                    }
                )
                taken += 1
        print(f"{repo}: {taken} pairs from {len(candidates)} candidate commits", file=sys.stderr)
    return rows


def _source(spec: str) -> tuple[Path, str, str]:
    path, _, licence = spec.partition("=")
    gitdir = Path(path)
    owner_name = gitdir.parent.name if gitdir.name == "repo" else gitdir.name
    return gitdir, owner_name.replace("+", "/", 1), licence or "unknown"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="write the corpus from git histories")
    b.add_argument("gitdirs", nargs="+", metavar="GITDIR[=LICENCE]")
    b.add_argument("--per-repo", type=int, default=40, help="pairs per repository (default 40)")
    b.add_argument("--seed", type=int, default=0, help="order in which commits are drawn (default 0)")
    b.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSONL file (default {DEFAULT_OUT})")
    c = sub.add_parser("check", help="run the corpus checks and print their counts")
    c.add_argument("file", nargs="?", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()

    if args.command == "build":
        rows = build([_source(s) for s in args.gitdirs], args.per_repo, args.seed)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        opener = gzip.open if args.out.suffix == ".gz" else open
        with opener(args.out, "wt", encoding="utf-8") as out:
            for row in rows:
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
        print(f"{len(rows)} pairs -> {args.out}; by kind {dict(Counter(r['commit_kind'] for r in rows))}")
        return 0

    sys.path.insert(0, str(ROOT))
    from tests.diff_corpus.checks import check_corpus, load_pairs

    report = check_corpus(load_pairs(args.file))
    print(json.dumps(report.counts(), indent=2))
    for problem in report.problems[:40]:
        print(problem)
    return 0


if __name__ == "__main__":
    sys.exit(main())
