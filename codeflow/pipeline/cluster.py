"""`codeflow build ... --ray ADDRESS|local --shards N`: the shards of a build as Ray tasks, merged into --out.

Each task is `codeflow build --shard K/N` into OUT/shards/K-of-N (its own run directory, its own sandbox), so
a rerun of the same command resumes every shard where it stopped; the merge into OUT is rebuilt from the
shards every time. Ray is an optional extra: `pip install "codeflow-focal[ray]"`.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import asdict, replace
from pathlib import Path

from codeflow.pipeline.build import BuildConfig, BuildError, BuildResult, build
from codeflow.pipeline.db import DB_NAME, RunDB
from codeflow.pipeline.shards import merge, shard_dirs

MERGED_KEY = "merged_from"  # run_meta of a directory that a --ray build merged (and may merge again)


def _build_shard(config: dict) -> dict:
    """One shard, in a Ray worker: the plain-data part of its BuildResult."""
    result = build(BuildConfig(**config))
    return {
        "calls": result.calls,
        "requests": result.requests,
        "llm_errors": result.llm_errors,
        "sandbox_jobs": result.sandbox_jobs,
        "skipped_lines": result.skipped_lines,
    }


def build_on_ray(config: BuildConfig) -> BuildResult:
    try:
        import ray
    except ImportError:
        raise BuildError('--ray needs Ray: pip install "codeflow-focal[ray]" (or pip install ray)') from None
    if config.shard:
        raise BuildError("--ray builds every shard itself: leave out --shard")
    out = Path(config.out)
    _clear_previous_merge(out)
    dirs = shard_dirs(out, config.shards)
    per_task = config.workers or 1  # sandbox workers (and CPUs) per shard
    shard_configs = [
        asdict(
            replace(
                config, shard=f"{k}/{config.shards}", out=str(d), ray=None, progress=False, workers=per_task
            )
        )
        for k, d in enumerate(dirs)
    ]
    started_here = not ray.is_initialized()
    if started_here:
        options = dict(include_dashboard=False, log_to_driver=False, logging_level="ERROR")
        if config.ray == "local":
            ray.init(num_cpus=max(os.cpu_count() or 1, per_task), **options)
        else:
            ray.init(address=config.ray, **options)
    try:
        task = ray.remote(num_cpus=per_task)(_build_shard)
        results = ray.get([task.remote(c) for c in shard_configs])
    finally:
        if started_here:
            ray.shutdown()
    pairs_path = merge(dirs, out)
    db = RunDB(out / DB_NAME, create=False)
    try:
        db.set_meta({MERGED_KEY: [str(d) for d in dirs]})
        outcomes = Counter(o["status"] for o in db.outcomes())
        verdicts = Counter(v["stage"] for v in db.verdicts())
        timings = db.timings()
        commits = db.commits
    finally:
        db.close()
    return BuildResult(
        problems=sum(outcomes.values()),
        skipped_lines=sum(r["skipped_lines"] for r in results),
        outcomes=outcomes,
        verdicts=verdicts,
        pairs=verdicts["kept"],
        calls=sum(r["calls"] for r in results),
        requests=sum(r["requests"] for r in results),
        resumed=None,
        llm_errors=[tuple(e) for r in results for e in r["llm_errors"]],
        sandbox_jobs=sum(r["sandbox_jobs"] for r in results),
        db_commits=commits,
        timings=timings,
        pairs_path=pairs_path,
    )


def _clear_previous_merge(out: Path) -> None:
    """A directory this launcher merged before is merged again from its shards; any other run is left alone."""
    path = out / DB_NAME
    if not path.exists():
        return
    db = RunDB(path, create=False)
    try:
        merged = db.get_meta(MERGED_KEY)
    finally:
        db.close()
    if not merged:
        raise BuildError(f"--out {out} holds a run that is not a --ray merge; use a new directory for --ray")
    for name in (DB_NAME, DB_NAME + "-wal", DB_NAME + "-shm", "pairs.jsonl"):
        (out / name).unlink(missing_ok=True)
