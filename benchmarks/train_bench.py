"""Benchmark: `focal-dpo train` against TRL's DPOTrainer on the same model, pairs and settings.

Both trainers get the same random-initialised Qwen2-architecture model (vocabulary 151,936 like Qwen2.5-Coder),
the same pairs, batch size, accumulation, max length, beta and learning rate, one epoch, reference log-probs
precomputed. Each runs in its own subprocess so peak memory (RSS on CPU, torch.cuda.max_memory_allocated on GPU)
is its own. tokens/s counts the non-pad tokens of prompt+chosen and prompt+rejected of every pair, divided by
the wall time from building the trainer (tokenization and reference pass included) to the end of training.

    python3 benchmarks/train_bench.py                 # CPU preset, a few minutes on 2 cores
    python3 benchmarks/train_bench.py --preset gpu    # Qwen2.5-Coder-0.5B shape, 2048 tokens, bf16
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PRESETS = {
    # small hidden size so the 151,936-row LM head dominates, as it does for real compact models
    "cpu": dict(hidden=64, layers=2, heads=4, kv_heads=2, intermediate=128, batch=4, accum=2, max_length=128,
                max_prompt_length=64, filler_lines=0, bf16=False),
    # Qwen2.5-Coder-0.5B: hidden 896, 24 layers, 14 heads, 2 KV heads, intermediate 4864, tied embeddings
    "gpu": dict(hidden=896, layers=24, heads=14, kv_heads=2, intermediate=4864, batch=2, accum=4, max_length=2048,
                max_prompt_length=1024, filler_lines=38, bf16=True),
}  # fmt: skip
VOCAB = 151_936


def lengthen(row: dict, filler_lines: int) -> dict:
    """Pad prompt and both completions with the same code lines (spans shifted) to reach long sequences."""
    if not filler_lines:
        return row
    filler = "".join(
        f"    total_{i} = compute_value({i}, items[{i} % len(items)]) * scale\n" for i in range(filler_lines)
    )
    context = "Here is the module this function belongs to:\n" + filler
    head = "```python\n"
    out = dict(row, prompt=context + row["prompt"])
    for side in ("chosen", "rejected"):
        text = row[side]
        assert text.startswith(head)
        out[side] = head + "def _setup(items, scale):\n" + filler + text[len(head) :]
        shift = len("def _setup(items, scale):\n") + len(filler)
        out[f"{side}_spans"] = [[s + shift, e + shift] for s, e in row[f"{side}_spans"]]
    return out


def prepare(workdir: Path, preset: dict, n_pairs: int) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config

    from focal_dpo.synthetic import bug_pairs, write_jsonl
    from tests.fixtures.tiny_model import load_test_tokenizer

    tokenizer = load_test_tokenizer()
    config = Qwen2Config(
        vocab_size=VOCAB, hidden_size=preset["hidden"], intermediate_size=preset["intermediate"],
        num_hidden_layers=preset["layers"], num_attention_heads=preset["heads"],
        num_key_value_heads=preset["kv_heads"], max_position_embeddings=32768, rope_theta=1_000_000.0,
        tie_word_embeddings=True, bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.save_pretrained(workdir / "model")
    tokenizer.save_pretrained(workdir / "model")
    rows = [lengthen(r, preset["filler_lines"]) for r in bug_pairs(n_pairs, seed=1)]
    write_jsonl(rows, workdir / "pairs.jsonl")
    params = sum(p.numel() for p in model.parameters())
    return {"params": params}


def count_tokens(workdir: Path, preset: dict, mask: str) -> int:
    """Non-pad tokens one epoch feeds through the model: (prompt + chosen) + (prompt + rejected) per pair."""
    from focal_dpo.data import build_pairs, load_rows
    from tests.fixtures.tiny_model import load_test_tokenizer

    pairs, report = build_pairs(
        load_rows(workdir / "pairs.jsonl"), load_test_tokenizer(), mask_mode=mask,
        max_length=preset["max_length"], max_prompt_length=preset["max_prompt_length"],
    )  # fmt: skip
    if report.pairs_kept != report.rows_read:  # both trainers must see the same pairs
        raise SystemExit("pairs were dropped: " + "; ".join(report.lines()))
    return sum(2 * len(p.prompt_ids) + len(p.chosen_ids) + len(p.rejected_ids) for p in pairs)


def peak_memory_mb() -> float:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_ours(workdir: Path, preset: dict, args: argparse.Namespace) -> dict:
    from focal_dpo.config import TrainConfig
    from focal_dpo.train import train

    config = TrainConfig(
        model=str(workdir / "model"), data=str(workdir / "pairs.jsonl"), output=str(workdir / f"ours-{args.mask}"),
        mask=args.mask, rpo_alpha=args.rpo_alpha, beta=args.beta, learning_rate=args.learning_rate,
        epochs=1, batch_size=preset["batch"], grad_accum=preset["accum"], max_length=preset["max_length"],
        max_prompt_length=preset["max_prompt_length"], warmup_ratio=0.0, bf16=preset["bf16"],
        seed=0, progress=False, logits_chunk=args.logits_chunk,
    )  # fmt: skip
    started = time.perf_counter()
    result = train(config)
    return {
        "seconds": time.perf_counter() - started,
        "steps": result.steps,
        "final_loss": result.last_metrics["loss"],
    }


def run_trl(workdir: Path, preset: dict, args: argparse.Namespace) -> dict:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    rows = [json.loads(line) for line in (workdir / "pairs.jsonl").read_text().splitlines()]
    dataset = Dataset.from_list([{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in rows])
    tokenizer = AutoTokenizer.from_pretrained(workdir / "model")
    model = AutoModelForCausalLM.from_pretrained(workdir / "model", dtype=torch.float32)
    config = DPOConfig(
        output_dir=str(workdir / "trl"), per_device_train_batch_size=preset["batch"],
        gradient_accumulation_steps=preset["accum"], max_length=preset["max_length"], beta=args.beta,
        loss_type=["sigmoid"], precompute_ref_log_probs=True, learning_rate=args.learning_rate,
        num_train_epochs=1, lr_scheduler_type="cosine", warmup_steps=0, logging_steps=1, save_strategy="no",
        report_to="none", bf16=preset["bf16"], use_cpu=not torch.cuda.is_available(), seed=0,
        dataloader_num_workers=0, disable_tqdm=True,
    )  # fmt: skip
    started = time.perf_counter()
    trainer = DPOTrainer(model=model, args=config, train_dataset=dataset, processing_class=tokenizer)
    out = trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {"seconds": time.perf_counter() - started, "steps": out.global_step, "final_loss": losses[-1]}


def worker(args: argparse.Namespace) -> None:
    preset = PRESETS[args.preset]
    workdir = Path(args.workdir)
    result = (run_ours if args.worker == "ours" else run_trl)(workdir, preset, args)
    result["peak_memory_mb"] = peak_memory_mb()
    print("RESULT " + json.dumps(result), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    parser.add_argument("--pairs", type=int, default=128)
    parser.add_argument("--beta", type=float, default=0.1)
    parser.add_argument("--learning-rate", type=float, default=5e-6)
    parser.add_argument("--mask", default="target", help="our mask mode (target is the paper's focal loss)")
    parser.add_argument("--rpo-alpha", type=float, default=0.0, help="ours; TRL runs plain sigmoid DPO")
    parser.add_argument("--logits-chunk", type=int, default=0, help="ours; 0: automatic")
    parser.add_argument("--only", choices=["ours", "trl"], help="run one side only")
    parser.add_argument("--worker", choices=["ours", "trl"], help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return 0

    preset = PRESETS[args.preset]
    with tempfile.TemporaryDirectory(prefix="train_bench-") as tmp:
        workdir = Path(tmp)
        info = prepare(workdir, preset, args.pairs)
        tokens = count_tokens(workdir, preset, args.mask)
        print(f"preset {args.preset}: Qwen2 {info['params'] / 1e6:.1f}M params (vocab {VOCAB}), {args.pairs} pairs, "
              f"{tokens} tokens/epoch, batch {preset['batch']} x accum {preset['accum']}, "
              f"max length {preset['max_length']}, beta {args.beta}; ours: --mask {args.mask} "
              f"--rpo-alpha {args.rpo_alpha}", flush=True)  # fmt: skip
        results = {}
        for side in [s for s in ("ours", "trl") if args.only in (None, s)]:
            cmd = [sys.executable, __file__, "--worker", side, "--workdir", tmp, "--preset", args.preset,
                   "--beta", str(args.beta), "--learning-rate", str(args.learning_rate), "--mask", args.mask,
                   "--rpo-alpha", str(args.rpo_alpha), "--logits-chunk", str(args.logits_chunk)]  # fmt: skip
            env = dict(os.environ, TQDM_DISABLE="1", TRANSFORMERS_VERBOSITY="error")
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
            if proc.returncode or not lines:
                print(
                    f"{side} failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
                )
                return 1
            results[side] = json.loads(lines[-1][len("RESULT ") :])
            results[side]["tokens_per_s"] = tokens / results[side]["seconds"]
            r = results[side]
            print(f"{side:5s} {r['steps']} steps in {r['seconds']:.1f} s: {r['tokens_per_s']:.0f} tokens/s, "
                  f"peak memory {r['peak_memory_mb']:.0f} MiB, last loss {r['final_loss']:.4f}", flush=True)  # fmt: skip
        if len(results) == 2:
            ours, trl = results["ours"], results["trl"]
            mem = ours["peak_memory_mb"] / trl["peak_memory_mb"]
            speed = ours["tokens_per_s"] / trl["tokens_per_s"]
            print(
                f"peak memory ours/TRL: {mem:.2f}x (goal <= 0.6x)  tokens/s ours/TRL: {speed:.2f}x (goal >= 1.3x)"
            )
    print("load: " + os.getloadavg().__repr__())
    return 0


if __name__ == "__main__":
    sys.exit(main())
