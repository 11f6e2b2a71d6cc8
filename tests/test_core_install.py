"""The core install (no `train` extra: no torch, transformers, datasets or peft) diffs code and builds a dataset."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Packages that only the `train` (and `datasets`) extras bring; the core must never import them.
EXTRAS_ONLY = ("torch", "transformers", "datasets", "peft", "accelerate", "safetensors", "tokenizers", "trl")

BLOCKER = f"""
import sys

class _NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {EXTRAS_ONLY!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (not in the core install)", name=name)
        return None

sys.meta_path.insert(0, _NotInstalled())
"""


def _run_core(args: list[str], cwd: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(BLOCKER)
    env = dict(os.environ, PYTHONPATH=f"{site}{os.pathsep}{ROOT}", NO_COLOR="1")
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_the_blocker_really_hides_torch(tmp_path: Path) -> None:
    proc = _run_core(["-c", "import torch"], tmp_path, tmp_path)
    assert proc.returncode != 0 and "not in the core install" in proc.stderr


def test_core_imports_the_diff_engine_and_the_sandbox_without_torch(tmp_path: Path) -> None:
    code = "import codeflow.diff, sandbox, codeflow.pipeline, codeflow.llm; print(sandbox.Sandbox.__name__)"
    proc = _run_core(["-c", code], tmp_path, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "Sandbox"


def test_core_runs_codeflow_diff_without_torch(tmp_path: Path) -> None:
    before, after = ROOT / "examples/diff/before.py", ROOT / "examples/diff/after.py"
    proc = _run_core(["-m", "codeflow.cli", "diff", str(before), str(after), "--json"], tmp_path, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["kind"] == "semantic"


@pytest.mark.timeout(300)
def test_core_runs_a_simulate_build_without_torch(tmp_path: Path) -> None:
    args = ["-m", "codeflow.cli", "build", str(ROOT / "examples/problems.jsonl"), "--out", "runs/demo"]
    proc = _run_core([*args, "--llm", "simulate", "--no-progress"], tmp_path, tmp_path)
    assert proc.returncode == 0, proc.stderr
    pairs = (tmp_path / "runs/demo/pairs.jsonl").read_text().splitlines()
    assert pairs and all(json.loads(line)["chosen"] for line in pairs)
