"""Benchmark: `focal-dpo train` against TRL's DPOTrainer, bytes of training state per parameter, tokenization.

1. Training, one run: ours with the target mask and with the full mask against TRL's DPOTrainer (full
   fine-tuning), and with --lora ours against TRL with the same peft config. Same random-initialised
   Qwen2-architecture model (vocabulary 151,936 like Qwen2.5-Coder), pairs, batch size, accumulation, max
   length, beta and learning rate, one epoch, reference log-probs precomputed. Each side runs in its own
   subprocess so peak memory (RSS on CPU, torch.cuda.max_memory_allocated on GPU) is its own. tokens/s counts
   the non-pad tokens of prompt+chosen and prompt+rejected of every pair, over the wall time from building
   the trainer (tokenization and reference pass included) to the end of training.
2. Memory: bytes of weights + gradients + optimizer state per parameter for each setup of docs/training.md,
   measured after one optimizer step on a CPU model, and checked against the table there.
3. Tokenization: one row at a time (three tokenizer calls per row, as before) against batched calls in one
   process and in a process pool.

    python3 benchmarks/train_bench.py                 # CPU preset, several minutes on 2 cores
    python3 benchmarks/train_bench.py --lora          # plus the LoRA comparison
    python3 benchmarks/train_bench.py --preset gpu    # Qwen2.5-Coder-0.5B shape, 2048 tokens, bf16
    python3 benchmarks/train_bench.py --preset gpu-7b --lora --only training
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
    # Qwen2.5-Coder-7B: hidden 3584, 28 layers, 28 heads, 4 KV heads, intermediate 18944 (LoRA only)
    "gpu-7b": dict(hidden=3584, layers=28, heads=28, kv_heads=4, intermediate=18944, batch=1, accum=8,
                   max_length=2048, max_prompt_length=1024, filler_lines=38, bf16=True, tied=False),
}  # fmt: skip
VOCAB = 151_936
LORA = dict(r=16, alpha=32, targets="all-linear")
DOCS = ROOT / "docs" / "training.md"
GB = 1e9
HEADROOM = 0.85  # of the GPU's memory for the training state; the rest for activations, context, fragments


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


def qwen2_config(preset: dict, vocab: int = VOCAB):
    from transformers import Qwen2Config

    from tests.fixtures.tiny_model import load_test_tokenizer

    tokenizer = load_test_tokenizer()
    return Qwen2Config(
        vocab_size=vocab, hidden_size=preset["hidden"], intermediate_size=preset["intermediate"],
        num_hidden_layers=preset["layers"], num_attention_heads=preset["heads"],
        num_key_value_heads=preset["kv_heads"], max_position_embeddings=32768, rope_theta=1_000_000.0,
        tie_word_embeddings=preset.get("tied", True), bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip


def prepare(workdir: Path, preset: dict, n_pairs: int) -> dict:
    import torch
    from transformers import AutoModelForCausalLM

    from focal_dpo.synthetic import bug_pairs, write_jsonl
    from tests.fixtures.tiny_model import load_test_tokenizer

    tokenizer = load_test_tokenizer()
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(qwen2_config(preset), dtype=torch.float32)
    model.save_pretrained(workdir / "model")
    tokenizer.save_pretrained(workdir / "model")
    rows = [lengthen(r, preset["filler_lines"]) for r in bug_pairs(n_pairs, seed=1)]
    write_jsonl(rows, workdir / "pairs.jsonl")
    return {"params": sum(p.numel() for p in model.parameters())}


def count_tokens(workdir: Path, preset: dict) -> int:
    """Non-pad tokens one epoch feeds through the model: (prompt + chosen) + (prompt + rejected) per pair."""
    from focal_dpo.data import build_pairs, load_rows
    from tests.fixtures.tiny_model import load_test_tokenizer

    pairs, report = build_pairs(
        load_rows(workdir / "pairs.jsonl"), load_test_tokenizer(), mask_mode="target",
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


def run_ours(workdir: Path, preset: dict, args: argparse.Namespace, mask: str, lora: bool) -> dict:
    from focal_dpo.config import TrainConfig
    from focal_dpo.train import train

    extra = (
        dict(lora_r=LORA["r"], lora_alpha=LORA["alpha"], lora_target_modules=LORA["targets"]) if lora else {}
    )
    config = TrainConfig(
        model=str(workdir / "model"), data=str(workdir / "pairs.jsonl"),
        output=str(workdir / f"ours-{mask}-{'lora' if lora else 'full'}"), mask=mask, rpo_alpha=args.rpo_alpha,
        beta=args.beta, learning_rate=args.learning_rate, epochs=1, batch_size=preset["batch"],
        grad_accum=preset["accum"], max_length=preset["max_length"], max_prompt_length=preset["max_prompt_length"],
        warmup_ratio=0.0, bf16=preset["bf16"], seed=0, progress=False, logits_chunk=args.logits_chunk,
        gradient_checkpointing=preset["max_length"] > 1024, **extra,
    )  # fmt: skip
    started = time.perf_counter()
    result = train(config)
    return {
        "seconds": time.perf_counter() - started,
        "steps": result.steps,
        "final_loss": result.last_metrics["loss"],
    }


def run_trl(workdir: Path, preset: dict, args: argparse.Namespace, lora: bool) -> dict:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    rows = [json.loads(line) for line in (workdir / "pairs.jsonl").read_text().splitlines()]
    dataset = Dataset.from_list([{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in rows])
    tokenizer = AutoTokenizer.from_pretrained(workdir / "model")
    model = AutoModelForCausalLM.from_pretrained(workdir / "model", dtype=torch.float32)
    peft_config = None
    if lora:
        from peft import LoraConfig

        peft_config = LoraConfig(r=LORA["r"], lora_alpha=LORA["alpha"], target_modules=LORA["targets"],
                                 lora_dropout=0.0, task_type="CAUSAL_LM")  # fmt: skip
    config = DPOConfig(
        output_dir=str(workdir / "trl"), per_device_train_batch_size=preset["batch"],
        gradient_accumulation_steps=preset["accum"], max_length=preset["max_length"], beta=args.beta,
        loss_type=["sigmoid"], precompute_ref_log_probs=True, learning_rate=args.learning_rate,
        num_train_epochs=1, lr_scheduler_type="cosine", warmup_steps=0, logging_steps=1, save_strategy="no",
        report_to="none", bf16=preset["bf16"], use_cpu=not torch.cuda.is_available(), seed=0,
        dataloader_num_workers=0, disable_tqdm=True, gradient_checkpointing=preset["max_length"] > 1024,
    )  # fmt: skip
    started = time.perf_counter()
    trainer = DPOTrainer(model=model, args=config, train_dataset=dataset, processing_class=tokenizer,
                         peft_config=peft_config)  # fmt: skip
    out = trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {"seconds": time.perf_counter() - started, "steps": out.global_step, "final_loss": losses[-1]}


SIDES = {  # name: (runner, mask, lora)
    "ours-target": ("ours", "target", False),
    "ours-full": ("ours", "full", False),
    "trl": ("trl", None, False),
    "ours-lora": ("ours", "target", True),
    "trl-lora": ("trl", None, True),
}


def worker(args: argparse.Namespace) -> None:
    preset, workdir = PRESETS[args.preset], Path(args.workdir)
    kind, mask, lora = SIDES[args.worker]
    result = (
        run_ours(workdir, preset, args, mask, lora)
        if kind == "ours"
        else run_trl(workdir, preset, args, lora)
    )
    result["peak_memory_mb"] = peak_memory_mb()
    print("RESULT " + json.dumps(result), flush=True)


def training(args: argparse.Namespace) -> int:
    preset = PRESETS[args.preset]
    sides = ["ours-lora", "trl-lora"] if args.preset == "gpu-7b" else ["ours-target", "ours-full", "trl"]
    if args.lora and args.preset != "gpu-7b":
        sides += ["ours-lora", "trl-lora"]
    with tempfile.TemporaryDirectory(prefix="train_bench-") as tmp:
        workdir = Path(tmp)
        info = prepare(workdir, preset, args.pairs)
        tokens = count_tokens(workdir, preset)
        print(f"preset {args.preset}: Qwen2 {info['params'] / 1e6:.1f}M params (vocab {VOCAB}), {args.pairs} pairs, "
              f"{tokens} tokens/epoch, batch {preset['batch']} x accum {preset['accum']}, max length "
              f"{preset['max_length']}, beta {args.beta}, --rpo-alpha {args.rpo_alpha} (ours); LoRA r {LORA['r']} "
              f"alpha {LORA['alpha']} {LORA['targets']}", flush=True)  # fmt: skip
        results = {}
        for side in sides:
            cmd = [sys.executable, __file__, "--worker", side, "--workdir", tmp, "--preset", args.preset,
                   "--beta", str(args.beta), "--learning-rate", str(args.learning_rate),
                   "--rpo-alpha", str(args.rpo_alpha), "--logits-chunk", str(args.logits_chunk)]  # fmt: skip
            env = dict(os.environ, TQDM_DISABLE="1", TRANSFORMERS_VERBOSITY="error")
            load = os.getloadavg()[0]
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
            if proc.returncode or not lines:
                print(
                    f"{side} failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
                )
                return 1
            r = results[side] = json.loads(lines[-1][len("RESULT ") :])
            r["tokens_per_s"] = tokens / r["seconds"]
            print(f"{side:12s} {r['steps']} steps in {r['seconds']:.1f} s: {r['tokens_per_s']:.0f} tokens/s, peak "
                  f"memory {r['peak_memory_mb']:.0f} MiB, last loss {r['final_loss']:.4f} (load {load:.1f} before, "
                  f"{os.getloadavg()[0]:.1f} after)", flush=True)  # fmt: skip
        for ours, theirs in (("ours-target", "trl"), ("ours-full", "trl"), ("ours-lora", "trl-lora")):
            if ours in results and theirs in results:
                a, b = results[ours], results[theirs]
                print(f"{ours} / {theirs}: peak memory {a['peak_memory_mb'] / b['peak_memory_mb']:.2f}x, "
                      f"tokens/s {a['tokens_per_s'] / b['tokens_per_s']:.2f}x")  # fmt: skip
    return 0


# ---- bytes of training state per parameter


def measure_step_bytes(dtype_name: str, optim: str) -> float:
    """Bytes/parameter after one step of full fine-tuning a CPU Qwen2 (hidden 256, 4 layers, vocab 8192)."""
    import torch
    from transformers import AutoModelForCausalLM

    from focal_dpo.optim import build_optimizer, training_state_bytes
    from focal_dpo.policy import PARAM_DTYPES, Policy

    preset = dict(hidden=256, layers=4, heads=4, kv_heads=2, intermediate=1024)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(qwen2_config(preset, vocab=8192), dtype=PARAM_DTYPES[dtype_name])
    policy = Policy(model)
    optimizer = build_optimizer(optim, list(model.parameters()), 1e-4, 0.0, torch.device("cpu"))
    ids = torch.randint(0, 8192, (2, 64))
    policy(ids, torch.ones_like(ids), torch.ones(2, 63, dtype=torch.bool)).sum().backward()
    optimizer.step()
    state = training_state_bytes(model, optimizer)
    return (state["weights"] + state["grads"] + state["optimizer"]) / state["parameters"]


def measure_lora_costs() -> tuple[float, float]:
    """(bytes per frozen bf16 base parameter, bytes per trained fp32 adapter parameter), after one step."""
    import torch
    from transformers import AutoModelForCausalLM

    from focal_dpo.optim import build_optimizer, tensor_bytes
    from focal_dpo.policy import Policy, add_lora, disable_dropout

    preset = dict(hidden=256, layers=4, heads=4, kv_heads=2, intermediate=1024)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(qwen2_config(preset, vocab=8192), dtype=torch.bfloat16)
    disable_dropout(model)
    peft_model = add_lora(model, LORA["r"], LORA["alpha"], 0.0, LORA["targets"])
    trained = [p for p in peft_model.parameters() if p.requires_grad]
    frozen = [p for p in peft_model.parameters() if not p.requires_grad]
    optimizer = build_optimizer("adamw", trained, 1e-4, 0.0, torch.device("cpu"))
    ids = torch.randint(0, 8192, (2, 64))
    Policy(peft_model)(ids, torch.ones_like(ids), torch.ones(2, 63, dtype=torch.bool)).sum().backward()
    optimizer.step()
    base = tensor_bytes([p.data for p in frozen]) / sum(p.numel() for p in frozen)
    adapter_bytes = tensor_bytes([p.data for p in trained]) + tensor_bytes([p.grad for p in trained])
    adapter_bytes += tensor_bytes(list(optimizer.state.values()))
    return base, adapter_bytes / sum(p.numel() for p in trained)


def measure_nf4_bytes() -> float:
    """Bytes per weight of a bitsandbytes NF4 tensor with double quantization (QLoRA's storage), on CPU."""
    import bitsandbytes.functional as bnbf
    import torch

    weight = torch.randn(3584, 3584, dtype=torch.bfloat16)
    packed, state = bnbf.quantize_4bit(weight, quant_type="nf4", compress_statistics=True)
    stats = [packed, state.absmax, state.code, state.offset, state.state2.absmax, state.state2.code]
    return sum(t.numel() * t.element_size() for t in stats) / weight.numel()


def seven_b_shape() -> tuple[int, int, int]:
    """(all parameters, parameters in quantizable linear layers, LoRA r=16 all-linear adapter parameters) of
    a Qwen2.5-Coder-7B-shaped model, counted on the meta device."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(qwen2_config(PRESETS["gpu-7b"], vocab=152_064))
    total = sum(p.numel() for p in model.parameters())
    head = model.get_output_embeddings()
    linear = sum(
        m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear) and m is not head
    )
    peft_model = get_peft_model(model, LoraConfig(r=LORA["r"], lora_alpha=LORA["alpha"],
                                                  target_modules=LORA["targets"], task_type="CAUSAL_LM"))  # fmt: skip
    adapter = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    return total, linear, adapter


def memory_table() -> dict[str, float]:
    """Measured bytes/parameter keyed by the options that select each setup (as docs/training.md lists them)."""
    rows = {
        "--param-dtype fp32 --optim adamw": measure_step_bytes("fp32", "adamw"),
        "--param-dtype bf16 --optim adamw": measure_step_bytes("bf16", "adamw"),
        "--param-dtype bf16 --optim adamw8bit": measure_step_bytes("bf16", "adamw8bit"),
        "--param-dtype bf16 --optim adamw4bit": measure_step_bytes("bf16", "adamw4bit"),
        "--param-dtype fp32 --optim bnb-adamw8bit": measure_step_bytes("fp32", "bnb-adamw8bit"),
    }
    base, adapter = measure_lora_costs()
    total, linear, lora = seven_b_shape()
    rows["--param-dtype bf16 --lora-r 16"] = base + adapter * lora / total
    nf4 = measure_nf4_bytes()
    rows["--load-in-4bit --lora-r 16"] = (
        nf4 * linear + base * (total - linear)
    ) / total + adapter * lora / total
    print(f"measured: bf16 base {base:.3f} B/param, adapter {adapter:.2f} B/param, NF4 {nf4:.4f} B/weight; "
          f"7B shape: {total / 1e9:.2f}B params, {linear / total:.1%} in linear layers, LoRA r16 adapter "
          f"{lora / 1e6:.1f}M ({lora / total:.2%})")  # fmt: skip
    return rows


def largest_model(bytes_per_param: float, gigabytes: float) -> str:
    return f"{gigabytes * GB * HEADROOM / bytes_per_param / 1e9:.1f}B"


def docs_table() -> dict[str, float]:
    """The bytes/parameter column of docs/training.md's memory table, keyed by its options column."""
    out = {}
    for line in DOCS.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[1].startswith("`--"):
            try:
                out[cells[1].strip("`")] = float(cells[2])
            except ValueError:
                continue
    return out


def memory(args: argparse.Namespace) -> int:
    measured, documented = memory_table(), docs_table()
    failures = 0
    print(
        f"{'options':45s} {'B/param':>8s} {'docs':>6s}   largest model at 24 / 80 / 141 GB ({HEADROOM:.0%} usable)"
    )
    for options, value in measured.items():
        doc = documented.get(options)
        ok = doc is not None and abs(doc - value) <= 0.02 * value + 0.005
        failures += not ok
        fits = " / ".join(largest_model(value, gb) for gb in (24, 80, 141))
        print(
            f"{options:45s} {value:8.3f} {doc if doc is not None else '-':>6}   {fits}  {'ok' if ok else 'MISMATCH'}"
        )
    return 1 if failures else 0


# ---- tokenization


def tokenization(args: argparse.Namespace) -> int:
    from codeflow.diff.tokens import spans_to_token_mask
    from focal_dpo.data import build_pairs
    from focal_dpo.synthetic import bug_pairs
    from tests.fixtures.tiny_model import load_test_tokenizer

    tokenizer = load_test_tokenizer()
    rows = [(f"r{i}", lengthen(r, 12)) for i, r in enumerate(bug_pairs(args.tokenize_pairs, seed=1))]
    chars = sum(len(r["prompt"]) + len(r["chosen"]) + len(r["rejected"]) for _, r in rows) / len(rows)

    def per_row():  # what build_pairs did before: three tokenizer calls per row, one row at a time
        for _, row in rows:
            tokenizer(row["prompt"], add_special_tokens=False)
            for side in ("chosen", "rejected"):
                enc = tokenizer(row[side], add_special_tokens=False, return_offsets_mapping=True)
                spans_to_token_mask(enc["offset_mapping"], [tuple(s) for s in row[f"{side}_spans"]])

    workers = min(os.cpu_count() or 1, 8)
    ways = {"per row": per_row,
            "batched, 1 process": lambda: build_pairs(rows, tokenizer, workers=1, max_length=4096),
            f"batched, {workers} processes": lambda: build_pairs(rows, tokenizer, workers=workers, max_length=4096)}  # fmt: skip
    times: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(2):  # interleaved, so a change of load hits every way alike
        for name, way in ways.items():
            started = time.perf_counter()
            way()
            times[name].append(time.perf_counter() - started)
    print(
        f"tokenization of {len(rows)} pairs ({chars:.0f} characters each), best of 2 (load {os.getloadavg()[0]:.1f}):"
    )
    base = min(times["per row"])
    for name, values in times.items():
        print(f"  {name:22s} {min(values):7.2f} s  {base / min(values):.2f}x")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    parser.add_argument("--pairs", type=int, default=128)
    parser.add_argument("--beta", type=float, default=0.1)
    parser.add_argument("--learning-rate", type=float, default=5e-6)
    parser.add_argument("--rpo-alpha", type=float, default=0.0, help="ours; TRL runs plain sigmoid DPO")
    parser.add_argument("--logits-chunk", type=int, default=0, help="ours; 0: automatic")
    parser.add_argument(
        "--lora", action="store_true", help="add ours with LoRA against TRL with the same config"
    )
    parser.add_argument("--only", choices=["training", "memory", "tokenization"], help="run one part only")
    parser.add_argument("--tokenize-pairs", type=int, default=20000)
    parser.add_argument("--worker", choices=sorted(SIDES), help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return 0
    print(f"load average before: {os.getloadavg()}")
    status = 0
    for part, run in (("training", training), ("memory", memory), ("tokenization", tokenization)):
        if args.only in (None, part):
            status |= run(args)
    print(f"load average after: {os.getloadavg()}")
    return status


if __name__ == "__main__":
    sys.exit(main())
