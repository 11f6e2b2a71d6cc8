"""benchmarks/mini_repro.py: the smoke run goes through every stage and writes its files; the task generator."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import mini_repro, mini_tasks

REPO = Path(__file__).resolve().parent.parent


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.timeout(900)
def test_smoke_run_writes_every_stage_and_a_row_per_arm(tmp_path):
    run = tmp_path / "smoke"
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "mini_repro.py"), str(run), "--smoke"],
        capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    for stage in ("tasks", "base", "build", "grid", "arms", "eval"):
        assert (run / stage / "done.json").is_file(), stage
    for split in mini_tasks.SPLITS:
        assert _jsonl(run / "tasks" / f"{split}.jsonl")
        assert _jsonl(run / "tasks" / f"{split}_bench.jsonl")
    assert (run / "base" / "model.safetensors").is_file()
    assert (run / "base" / "tokenizer.json").is_file()
    for source in ("transformers", "simulate"):
        assert (run / "build" / source / "codeflow.db").is_file()
        assert "pass rate by iteration" in (run / "build" / source / "stats.txt").read_text()
    pairs = _jsonl(run / "build" / "pairs.jsonl")
    assert pairs and {"prompt", "chosen", "rejected", "rejected_spans"} <= set(pairs[0])
    for arm in mini_repro.ARMS:
        name = mini_repro.run_name(arm, 1e-4, 0)
        assert (run / "arms" / name / "final" / "config.json").is_file(), arm
        summary = json.loads((run / "eval" / name / "summary.json").read_text())
        assert summary["num_problems"] == 8
    results = json.loads((run / "results.json").read_text())
    assert [row["arm"] for row in results["rows"]] == ["base", *mini_repro.ARMS]
    for row in results["rows"]:
        assert 0.0 <= row["ci95"][0] <= row["pass1_mean"] <= row["ci95"][1] <= 1.0
    table = (run / "table.md").read_text()
    for arm in ["base", *mini_repro.ARMS]:
        assert f"| {arm} |" in table
    assert "pass@1" in (run / "eval" / "compare_dpo_vs_target_dpo.txt").read_text()
    assert "| Target-DPO |" in done.stdout

    # A second invocation finds every stage complete and only prints the table again.
    again = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "mini_repro.py"), str(run), "--smoke"],
        capture_output=True, text=True, cwd=REPO, timeout=120,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
    assert "pretrain step" not in again.stdout and "| Target-DPO |" in again.stdout


def test_resume_with_other_settings_is_refused(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    (run / "settings.json").write_text(json.dumps({"seed": 5}))
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "mini_repro.py"), str(run), "--smoke"],
        capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    assert done.returncode == 2
    assert "other settings" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_bad_option_is_one_line_and_exit_2(tmp_path):
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "mini_repro.py"), str(tmp_path / "x"), "--steps", "0"],
        capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip() == "mini_repro: --steps must be at least 1"


def test_splits_share_no_instruction_and_heldout_has_its_own_templates():
    splits = mini_tasks.make_splits(3, {"pretrain": 300, "train": 60, "validation": 40, "heldout": 40})
    instructions = [p["instruction"] for rows in splits.values() for p in rows]
    assert len(instructions) == len(set(instructions))
    templates = {split: {p["template"] for p in rows} for split, rows in splits.items()}
    assert templates["heldout"] & set(mini_tasks.HELDOUT_TEMPLATES)
    assert not (templates["pretrain"] | templates["train"] | templates["validation"]) & set(
        mini_tasks.HELDOUT_TEMPLATES
    )
    assert not (templates["pretrain"] | templates["heldout"]) & set(mini_tasks.VALIDATION_TEMPLATES)


def test_every_template_solution_passes_its_own_tests():
    import random

    rng = random.Random(0)
    for template in mini_tasks.TEMPLATES:
        for _ in range(5):
            problem = mini_tasks.make_problem(template, rng)
            namespace: dict = {}
            exec(problem["solution"] + problem["tests"], namespace)
            assert problem["instruction"].startswith(f"Write a Python function `{template.name}(")


def test_same_seed_same_tasks():
    sizes = {"pretrain": 50, "train": 10, "validation": 10, "heldout": 10}
    assert mini_tasks.make_splits(1, sizes) == mini_tasks.make_splits(1, sizes)
    assert mini_tasks.make_splits(1, sizes) != mini_tasks.make_splits(2, sizes)
