"""Shards of a build and their merge.

Everything in a build is seeded per problem id (simulate's bugs, the negative's choice, the request cache key),
and every problem is built and judged alone, so a build can be split by problem into shards that run anywhere
and merge into exactly the result of one run: `codeflow build ... --shard K/N --out RUN_K` on each machine,
then `codeflow merge RUN_0 ... RUN_{N-1} --out RUN`. A problem belongs to shard `sha256(id) mod N`; a source
row that could not be read belongs to the shard of its location, so it is counted once.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from codeflow.pipeline.db import DB_NAME, RunDB, RunDirError, open_run_db


@dataclass(frozen=True)
class Shard:
    index: int  # 0-based
    count: int

    def holds(self, key: str) -> bool:
        return shard_of(key, self.count) == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def shard_of(key: str, count: int) -> int:
    """The shard of a problem id (or a bad row's location): stable across machines, runs and Python versions."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") % count


def parse_shard(text: str) -> Shard:
    """`K/N` with 0 <= K < N; ValueError names the option."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not m:
        raise ValueError(f"--shard {text!r}: expected K/N, e.g. --shard 0/4 for the first of four shards")
    index, count = int(m.group(1)), int(m.group(2))
    if count < 1 or not 0 <= index < count:
        raise ValueError(
            f"--shard {text!r}: K must be 0 to N-1 (shards are numbered from 0), and N at least 1"
        )
    return Shard(index, count)


# Config entries that may differ between the shards of one build; everything else must agree.
PER_SHARD_KEYS = ("problems", "out", "shard", "ray", "shards", "workers", "progress")


def merge(runs: list[str | Path], out: str | Path) -> Path:
    """Merge shard run directories into a new run directory `out` and write its pairs.jsonl.

    Raises RunDirError when a directory is not a shard of the same build, a shard is missing or repeated, or
    `out` already holds a run."""
    from codeflow.pipeline.export import write_pairs

    out = Path(out)
    if (out / DB_NAME).exists():
        raise RunDirError(f"--out {out} already holds a run; merge into a new directory")
    shards, configs, generations = [], [], []
    for run in runs:
        path = Path(run) / DB_NAME
        if not path.exists():
            raise RunDirError(f"{run}: no run database here (not a `codeflow build --shard` run directory)")
        db = RunDB(path, create=False)
        try:
            generation = db.get_meta("generation") or {}
            config = db.get_meta("config") or {}
        finally:
            db.close()
        if not generation.get("shard"):
            raise RunDirError(f"{run} is not a shard (it was built without --shard)")
        shards.append((parse_shard(generation["shard"]), run))
        configs.append(config)
        generations.append(generation)
    count = shards[0][0].count
    first_run, first_generation = shards[0][1], _without_shard(generations[0])
    seen: dict[int, str | Path] = {}
    for (shard, run), generation, config in zip(shards, generations, configs, strict=True):
        if shard.count != count:
            raise RunDirError(f"{run} is shard {shard} but {first_run} is one of {count} shards")
        if shard.index in seen:
            raise RunDirError(f"{run} and {seen[shard.index]} are both shard {shard}")
        seen[shard.index] = run
        if _without_shard(generation) != first_generation:
            raise RunDirError(f"{run} was built with other generation settings than {first_run}")
        differ = sorted(
            k
            for k in _shared(configs[0]) | _shared(config)
            if _shared(configs[0]).get(k) != _shared(config).get(k)
        )
        if differ:
            raise RunDirError(f"{run} was built with other settings than {first_run} ({', '.join(differ)})")
    missing = [i for i in range(count) if i not in seen]
    if missing:
        raise RunDirError(
            f"shard(s) {', '.join(f'{i}/{count}' for i in missing)} missing: merge all {count} shards"
        )
    db = open_run_db(out)
    try:
        for _, run in sorted(shards, key=lambda s: s[0].index):
            db.absorb(Path(run) / DB_NAME)
        merged_config = configs[0] | {"out": str(out), "shard": None}
        db.set_meta({"generation": {**generations[0], "shard": None}, "config": merged_config})
        write_pairs(db, out / "pairs.jsonl")
    finally:
        db.close()
    return out / "pairs.jsonl"


def _shared(config: dict) -> dict:
    return {k: v for k, v in config.items() if k not in PER_SHARD_KEYS}


def _without_shard(generation: dict) -> dict:
    return {k: v for k, v in generation.items() if k != "shard"}


def shard_dirs(out: str | Path, count: int) -> list[Path]:
    """Where `--ray` puts its shards' run directories: OUT/shards/K-of-N."""
    return [Path(out) / "shards" / f"{k}-of-{count}" for k in range(count)]
