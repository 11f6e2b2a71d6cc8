"""`focal-dpo train | tiny-model | plot` as a user runs them: exit codes and one stderr line naming the input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from focal_dpo.synthetic import bug_pairs, write_jsonl

ROOT = Path(__file__).resolve().parents[1]


def focal_dpo(*args: str, env: dict | None = None, timeout: int = 240) -> subprocess.CompletedProcess:
    full_env = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
    return subprocess.run([sys.executable, "-m", "focal_dpo.cli", *args], capture_output=True, text=True,
                          env=full_env, cwd=ROOT, timeout=timeout)  # fmt: skip


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_jsonl(bug_pairs(8, seed=2), tmp_path_factory.mktemp("cli_data") / "pairs.jsonl")


def train_args(model, data, output, *extra):
    return ["train", "--model", str(model), "--data", str(data), "--output", str(output), "--max-length", "96",
            "--batch-size", "4", "--no-progress", *extra]  # fmt: skip


def test_yaml_values_are_converted_by_each_options_type(tmp_path):
    import argparse

    from focal_dpo.config import add_arguments, resolve

    config_file = tmp_path / "train.yaml"
    config_file.write_text(
        "model: m\ndata: d.jsonl\noutput: o\nlearning_rate: 5e-6\nmax_steps: '3'\nbf16: false\n"
    )
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    config = resolve(parser.parse_args(["--config", str(config_file)]))
    assert (config.learning_rate, config.max_steps, config.bf16) == (5e-6, 3, False)
    assert isinstance(config.learning_rate, float)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("max_steps: two\n", "train.yaml: max_steps: expected an integer, got 'two'"),
        ("learning_rate: fast\n", "train.yaml: learning_rate: expected a number, got 'fast'"),
        ("resume: maybe\n", "train.yaml: resume: expected true or false, got 'maybe'"),
        ("mask: target\n  beta: 0.1\n", "train.yaml: not valid YAML (line 2, column 7"),
        ("- model\n- data\n", "train.yaml: expected a mapping of option: value"),
        ("betta: 0.2\n", "train.yaml: unknown option(s) betta"),
    ],
)
def test_bad_yaml_is_one_line_naming_the_file_and_option_before_anything_loads(tmp_path, text, expected):
    config_file = tmp_path / "train.yaml"
    config_file.write_text(text)
    out = focal_dpo("train", "--config", str(config_file), "--model", "m", "--data", "d", "--output", "o")
    assert out.returncode == 2
    assert expected in one_line(out.stderr)


def test_bad_command_line_values_are_one_line_naming_the_option():
    out = focal_dpo("train", "--max-steps", "two")
    assert out.returncode == 2
    assert "--max-steps: invalid int value: 'two'" in one_line(out.stderr)
    out = focal_dpo("train", "--model", "m", "--data", "d", "--output", "o", "--mask", "half")
    assert out.returncode == 2 and "--mask: invalid choice: 'half'" in one_line(out.stderr)


def test_data_that_is_a_directory_is_one_line(tiny_model_dir, tmp_path):
    out = focal_dpo(*train_args(tiny_model_dir, tmp_path, tmp_path / "out"))
    assert out.returncode == 2
    assert f"--data {tmp_path}: is a directory; --data takes a .jsonl" in one_line(out.stderr)
    out = focal_dpo(*train_args(tiny_model_dir, tmp_path / "missing.jsonl", tmp_path / "out"))
    assert out.returncode == 2 and "missing.jsonl: no such data file" in one_line(out.stderr)


def test_wrong_model_paths_are_one_line_instead_of_a_traceback(data, tmp_path):
    out = focal_dpo(*train_args(tmp_path / "no" / "such" / "model", data, tmp_path / "out"))
    assert out.returncode == 2
    assert f"--model {tmp_path}/no/such/model: no such directory" in one_line(out.stderr)
    (tmp_path / "empty").mkdir()
    out = focal_dpo(*train_args(tmp_path / "empty", data, tmp_path / "out"))
    assert out.returncode == 2 and "no config.json in it" in one_line(out.stderr)


def test_a_hub_name_while_offline_fails_at_once(data, tmp_path):
    started = time.monotonic()
    out = focal_dpo(*train_args("some-org/not-a-cached-model", data, tmp_path / "out"),
                    env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")})  # fmt: skip
    assert out.returncode == 2
    line = one_line(out.stderr)
    assert (
        "--model some-org/not-a-cached-model: not in the local Hugging Face cache and HF_HUB_OFFLINE" in line
    )
    assert time.monotonic() - started < 60  # no retries: the import of the trainer is the whole cost


def test_a_bad_row_is_exit_2_naming_the_file_and_line(tiny_model_dir, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(bug_pairs(1)[0]) + "\n{not json\n")
    out = focal_dpo(*train_args(tiny_model_dir, bad, tmp_path / "out"))
    assert out.returncode == 2
    assert "bad.jsonl:2: not valid JSON (Expecting property name enclosed in double quotes at column 2)" in (
        one_line(out.stderr)
    )


def test_skip_bad_skips_invalid_json_counts_it_and_shows_no_third_party_bars(tiny_model_dir, tmp_path):
    rows = bug_pairs(6, seed=1)
    bad = tmp_path / "mixed.jsonl"
    lines = (
        [json.dumps(r) for r in rows[:3]]
        + ["{not json", json.dumps({"prompt": "p"})]
        + [json.dumps(r) for r in rows[3:]]
    )
    bad.write_text("\n".join(lines) + "\n")
    out = focal_dpo(*train_args(tiny_model_dir, bad, tmp_path / "out", "--skip-bad", "--max-steps", "1"))
    assert out.returncode == 0, out.stderr
    assert "data: pairs read: 8, kept: 6, bad rows skipped: 2" in out.stdout
    assert (
        "mixed.jsonl:4: not valid JSON" in out.stdout and "mixed.jsonl:5: missing or non-string" in out.stdout
    )
    for bar in ("Loading weights", "Writing model shards", "it/s"):
        assert bar not in out.stderr, out.stderr
    assert (tmp_path / "out" / "final" / "model.safetensors").exists()


def test_ctrl_c_during_training_names_the_last_checkpoint_and_the_resume_command(
    tiny_model_dir, data, tmp_path
):
    out_dir = tmp_path / "run"
    args = train_args(tiny_model_dir, data, out_dir, "--max-steps", "100000", "--save-steps", "1")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "focal_dpo.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while not (out_dir / "checkpoint-2").exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-3000:]
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    line = one_line(stderr)
    assert line.startswith("focal-dpo train: interrupted at step ")
    assert f"the last checkpoint is {out_dir}/checkpoint-" in line
    assert line.endswith(f"continue with: focal-dpo {' '.join(args)} --resume")


def test_every_train_option_is_described_with_its_default():
    from codeflow.cli import build_parser
    from focal_dpo.cli import SUBCOMMAND_MODULES

    parser = build_parser("focal-dpo", SUBCOMMAND_MODULES, "")
    subparsers = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    train = subparsers.choices["train"]
    options = [a for a in train._actions if a.option_strings and a.dest != "help"]
    assert len(options) > 40
    for action in options:
        assert action.help and "(default: " in action.help, action.option_strings
    for name in ("tiny-model", "plot"):
        text = subparsers.choices[name].format_help()
        for action in subparsers.choices[name]._actions:
            if action.option_strings and action.dest != "help":
                assert action.help, (name, action.option_strings)
        assert (
            text.count("(default:")
            >= len([a for a in subparsers.choices[name]._actions if a.option_strings]) - 1
        )


def test_tiny_model_writes_a_loadable_model_with_the_packaged_tokenizer(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from focal_dpo.assets import TOKENIZER_DIR
    from tests.fixtures.tiny_model import TOKENIZER_DIR as FIXTURE

    assert (TOKENIZER_DIR / "tokenizer.json").read_bytes() == (FIXTURE / "tokenizer.json").read_bytes()
    out = focal_dpo("tiny-model", str(tmp_path / "tiny"), "--hidden-size", "32")
    assert out.returncode == 0, out.stderr
    assert f"to {tmp_path / 'tiny'}" in out.stdout and "Writing model shards" not in out.stderr
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "tiny")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "tiny")
    assert model.config.hidden_size == 32 and len(tokenizer) == model.config.vocab_size == 4096
    assert tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False).startswith(
        "<|im_start|>"
    )
    again = focal_dpo("tiny-model", str(tmp_path / "tiny"))
    assert again.returncode == 2
    assert f"{tmp_path / 'tiny'} already exists and is not an empty directory" in one_line(again.stderr)


def test_plot_draws_a_runs_metrics_to_a_png_and_names_a_bad_input(tiny_model_dir, data, tmp_path):
    from focal_dpo.config import TrainConfig
    from focal_dpo.train import train

    run = tmp_path / "run"
    train(TrainConfig(model=str(tiny_model_dir), data=str(data), output=str(run), max_steps=6, batch_size=2,
                      max_length=96, learning_rate=1e-3, eval_fraction=0.25, eval_steps=3, progress=False))  # fmt: skip
    out = focal_dpo("plot", str(run))
    assert out.returncode == 0, out.stderr
    png = run / "metrics.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 10_000
    assert "loss, reward margin, reward accuracy, rewards, learning rate, gradient norm" in out.stdout

    missing = focal_dpo("plot", str(tmp_path / "nothing"))
    assert missing.returncode == 2 and "nothing: no such run directory" in one_line(missing.stderr)
    lines = len((run / "metrics.jsonl").read_text().splitlines())
    with (run / "metrics.jsonl").open("a") as f:
        f.write("{broken\n")
    broken = focal_dpo("plot", str(run))
    assert broken.returncode == 2 and f"metrics.jsonl:{lines + 1}: not valid JSON" in one_line(broken.stderr)
