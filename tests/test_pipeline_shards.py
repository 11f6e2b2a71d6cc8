"""`codeflow build --shard K/N` and `codeflow merge`: the shards of a build merge into exactly one run's
pairs.jsonl and stats; `--ray local --shards N` runs the shards as Ray tasks and gives the same file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from codeflow.cli import main as codeflow_main
from codeflow.pipeline.build import BuildConfig, BuildError, build
from codeflow.pipeline.shards import parse_shard, shard_of
from codeflow.pipeline.stats import collect, render

ROOT = Path(__file__).resolve().parent.parent
SUBSET = [
    "running_max",
    "chunk_list",
    "merge_intervals",
    "balanced_brackets",
    "stack_class",
    "parse_duration",
    "stdio_sum_pairs",
    "stdio_grid_paths",
    "caesar_shift",
    "run_length_encode",
    "gcd_list",  # no tests: skipped by simulate, in whichever shard it falls
]
COMMON = dict(seed=5, exec_timeout_s=3.0, progress=False, no_humaneval=True)


@pytest.fixture(scope="module")
def problems(tmp_path_factory) -> Path:
    rows = [json.loads(line) for line in (ROOT / "examples/problems.jsonl").read_text().splitlines()]
    path = tmp_path_factory.mktemp("problems") / "problems.jsonl"
    lines = [json.dumps(r) for r in rows if r["id"] in SUBSET] + ["{not json", '{"id": "no_instruction"}']
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def single_run(problems, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("single") / "run"
    result = build(BuildConfig(problems=str(problems), out=str(out), **COMMON))
    assert result.pairs >= 5 and result.skipped_lines == 2
    return out


def comparable(run: Path) -> dict:
    """A run's stats without what differs between any two runs: the directory and the measured seconds."""
    stats = collect(run, timings=False)
    stats.pop("run_dir")
    return stats


def stats_text(run: Path) -> str:
    return render(collect(run, timings=False)).split("\n", 1)[1]  # the first line names the directory


def test_shards_are_a_stable_partition_of_the_ids():
    ids = [f"problem-{i}" for i in range(300)]
    for count in (1, 2, 3, 7):
        owners = [shard_of(pid, count) for pid in ids]
        assert all(0 <= k < count for k in owners)
        assert [shard_of(pid, count) for pid in ids] == owners  # the same on every call (and machine)
        if count > 1:
            assert len(set(owners)) == count
    assert parse_shard("1/3").index == 1
    for bad in ("3/3", "1", "a/b", "-1/2", "0/0"):
        with pytest.raises(ValueError, match="--shard"):
            parse_shard(bad)


@pytest.mark.parametrize("count", [2, 3])
def test_shards_merged_equal_one_run_byte_for_byte(problems, single_run, tmp_path, count):
    shards = []
    for k in range(count):
        out = tmp_path / f"shard{k}"
        build(BuildConfig(problems=str(problems), out=str(out), shard=f"{k}/{count}", **COMMON))
        shards.append(out)
    merged = tmp_path / "merged"
    assert codeflow_main(["merge", *map(str, reversed(shards)), "--out", str(merged)]) == 0
    assert (merged / "pairs.jsonl").read_bytes() == (single_run / "pairs.jsonl").read_bytes()
    assert comparable(merged) == comparable(single_run)
    assert stats_text(merged) == stats_text(single_run)
    assert collect(merged)["bad_rows"] == 2  # each bad line counted in exactly one shard
    # the merged directory is a run like any other: a rerun of the whole build there sends nothing
    again = build(BuildConfig(problems=str(problems), out=str(merged), **COMMON))
    assert (
        again.calls == 0
        and (merged / "pairs.jsonl").read_bytes() == (single_run / "pairs.jsonl").read_bytes()
    )


def test_merge_refuses_what_is_not_one_build_and_a_shard_keeps_its_spec(problems, tmp_path, capsys):
    a, b, other = tmp_path / "a", tmp_path / "b", tmp_path / "other"
    build(BuildConfig(problems=str(problems), out=str(a), shard="0/2", **COMMON))
    build(BuildConfig(problems=str(problems), out=str(b), shard="1/2", **(COMMON | {"seed": 6})))
    build(BuildConfig(problems=str(problems), out=str(other), shard="0/3", **COMMON))
    cases = [
        ([a], "shard(s) 1/2 missing"),
        ([a, a], "are both shard 0/2"),
        ([a, other], "one of 2 shards"),
        ([a, b], "other generation settings"),
        ([tmp_path / "nowhere"], "no run database here"),
    ]
    capsys.readouterr()
    for runs, message in cases:
        rc = codeflow_main(["merge", *map(str, runs), "--out", str(tmp_path / "m")])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1 and message in err[0], (runs, err)
    with pytest.raises(BuildError, match=r"shard: '0/2' -> '1/2'"):
        build(BuildConfig(problems=str(problems), out=str(a), shard="1/2", **COMMON))


@pytest.mark.slow  # two Ray start-ups, about 20 s each here
def test_ray_on_a_local_instance_gives_the_same_file(problems, single_run, tmp_path):
    pytest.importorskip("ray")
    out = tmp_path / "ray"
    cmd = [sys.executable, "-m", "codeflow.cli", "build", str(problems), "--out", str(out)]
    cmd += [
        "--ray",
        "local",
        "--shards",
        "2",
        "--seed",
        "5",
        "--exec-timeout",
        "3",
        "--no-progress",
        "--no-humaneval",
    ]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (out / "pairs.jsonl").read_bytes() == (single_run / "pairs.jsonl").read_bytes()
    assert comparable(out) == comparable(single_run)
    assert sorted(p.name for p in (out / "shards").iterdir()) == ["0-of-2", "1-of-2"]
    # a rerun resumes every shard (nothing to ask) and merges again
    again = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "(0 model calls this run" in again.stdout
    assert (out / "pairs.jsonl").read_bytes() == (single_run / "pairs.jsonl").read_bytes()
