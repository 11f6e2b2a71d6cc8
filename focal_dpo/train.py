"""`focal-dpo train`: the focal-DPO training loop, top to bottom in one place (nanoGPT style, no Trainer class)."""

from __future__ import annotations

import argparse
import json
import math
import random
import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from focal_dpo import checkpoint
from focal_dpo.checkpoint import Position
from focal_dpo.config import TrainConfig, resolve, write_config
from focal_dpo.data import BadRowError, DataReport, PairBatch, build_pairs, collate, load_rows
from focal_dpo.loss import dpo_loss
from focal_dpo.reference import (
    batch_token_logps,
    cached_batch_logps,
    fingerprint,
    load_or_precompute,
    precompute,
)


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or inf; the message names the step and the rows of the micro-batch."""


@dataclass
class PairOutput:
    losses: torch.Tensor  # per pair, with grad
    chosen_rewards: torch.Tensor
    rejected_rewards: torch.Tensor
    chosen_logps: torch.Tensor  # weighted policy K+, detached
    rejected_logps: torch.Tensor
    nll_sum: torch.Tensor  # summed over the chosen completion tokens, with grad


@dataclass
class TrainResult:
    output: Path
    steps: int
    report: DataReport
    last_metrics: dict = field(default_factory=dict)
    eval_metrics: dict = field(default_factory=dict)


def forward_pairs(
    model: torch.nn.Module, batch: PairBatch, ref_token_logps: torch.Tensor, config: TrainConfig
) -> PairOutput:
    """Weighted sequence log-probs of both sides, the per-pair DPO/IPO loss and the summed chosen NLL."""
    nll_mask = batch.nll_mask
    positions = batch.weights != 0
    if config.rpo_alpha:
        positions = positions | nll_mask
    token_logps = batch_token_logps(model, batch, positions, config.logits_chunk)
    policy = (token_logps * batch.weights).sum(-1)
    ref = (ref_token_logps * batch.weights).sum(-1)
    b = batch.num_pairs
    losses, chosen_rewards, rejected_rewards = dpo_loss(
        policy[:b], policy[b:], ref[:b], ref[b:], config.beta, config.loss
    )
    nll_sum = -(token_logps * nll_mask).sum()
    return PairOutput(
        losses, chosen_rewards, rejected_rewards, policy[:b].detach(), policy[b:].detach(), nll_sum
    )


def epoch_order(train_indices: list[int], seed: int, epoch: int) -> list[int]:
    generator = torch.Generator().manual_seed(seed * 1000 + epoch)
    return [train_indices[i] for i in torch.randperm(len(train_indices), generator=generator).tolist()]


def next_step(
    train_indices: list[int], position: Position, config: TrainConfig
) -> tuple[list[list[int]], Position]:
    """The micro-batches of the next optimizer step and the position after it; a step never spans epochs."""
    order = epoch_order(train_indices, config.seed, position.epoch)
    taken = order[position.offset : position.offset + config.batch_size * config.grad_accum]
    micro = [taken[i : i + config.batch_size] for i in range(0, len(taken), config.batch_size)]
    offset = position.offset + len(taken)
    after = Position(position.step + 1, position.epoch, offset)
    if offset >= len(order):
        after = Position(position.step + 1, position.epoch + 1, 0)
    return micro, after


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def load_model(path: str, device: torch.device) -> torch.nn.Module:
    from transformers import AutoModelForCausalLM

    # fp32 master weights; bf16 is autocast only, so AdamW updates stay exact
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).to(device)


def split_indices(n: int, eval_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    n_eval = int(round(n * eval_fraction))
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    return sorted(order[n_eval:]), sorted(order[:n_eval])


@torch.no_grad()
def evaluate(model, ref_logps_for, pairs, eval_indices, config, pad_id, device, autocast) -> dict:
    """Mean loss and reward accuracy (chosen reward > rejected reward) over the held-out pairs."""
    model.eval()
    losses, correct, margins = [], [], []
    for start in range(0, len(eval_indices), config.batch_size):
        batch = collate(pairs, eval_indices[start : start + config.batch_size], config.mask, pad_id).to(
            device
        )
        with autocast():
            out = forward_pairs(model, batch, ref_logps_for(batch), config)
        losses += out.losses.float().tolist()
        correct += (out.chosen_rewards > out.rejected_rewards).float().tolist()
        margins += (out.chosen_rewards - out.rejected_rewards).tolist()
    model.train()
    return {"eval/loss": float(np.mean(losses)), "eval/rewards/accuracies": float(np.mean(correct)),
            "eval/rewards/margins": float(np.mean(margins)), "eval/pairs": len(eval_indices)}  # fmt: skip


def train(config: TrainConfig) -> TrainResult:
    from tqdm import tqdm
    from transformers import AutoTokenizer, get_cosine_schedule_with_warmup

    output = Path(config.output)
    output.mkdir(parents=True, exist_ok=True)
    write_config(config, output / "config.yaml")
    random.seed(config.seed), np.random.seed(config.seed), torch.manual_seed(config.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    use_bf16 = (
        config.bf16 if config.bf16 is not None else device.type == "cuda" and torch.cuda.is_bf16_supported()
    )
    autocast_dtype = torch.bfloat16 if use_bf16 else None

    def autocast():
        return torch.autocast(device.type, dtype=autocast_dtype or torch.float32, enabled=use_bf16)

    # data: tokenize, mask, drop and report before any model is loaded
    tokenizer = AutoTokenizer.from_pretrained(config.model)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    pairs, report = build_pairs(
        load_rows(config.data), tokenizer, mask_mode=config.mask, max_length=config.max_length,
        max_prompt_length=config.max_prompt_length, context=config.context,
        chat_template=config.chat_template, skip_bad=config.skip_bad,
    )  # fmt: skip
    print("\n".join("data: " + line for line in report.lines()), flush=True)
    if not pairs:
        raise ValueError(f"{config.data}: no trainable pairs left (see the data report above)")
    train_indices, eval_indices = split_indices(len(pairs), config.eval_fraction, config.seed)
    if not train_indices:
        raise ValueError(f"{config.data}: --eval-fraction {config.eval_fraction} leaves no pair to train on")

    resume_from = checkpoint.latest(output) if config.resume else None
    if config.resume:
        print(f"resuming from {resume_from}" if resume_from else f"no checkpoint in {output}: starting fresh")
    model = load_model(str(resume_from or config.model), device)

    # reference: the initial policy unless --ref-model; precomputed before training so it never sits in memory
    ref_source = config.ref_model or config.model
    ref_model, ref_cache = None, None
    if config.ref == "precompute":
        key = fingerprint(ref_source, pairs, str(autocast_dtype), config.mask)
        fresh_policy = resume_from is None and ref_source == config.model

        def compute():
            ref = model if fresh_policy else load_model(ref_source, device)
            return precompute(ref, pairs, pad_id, config.batch_size, config.logits_chunk, device, autocast_dtype,
                              config.progress, config.mask)  # fmt: skip

        ref_cache = load_or_precompute(Path(config.ref_cache or output / "ref_cache"), key, compute)
    else:
        ref_model = load_model(ref_source, device).eval().requires_grad_(False)

    @torch.no_grad()
    def ref_logps_for(batch: PairBatch) -> torch.Tensor:
        if ref_cache is not None:
            return cached_batch_logps(batch, ref_cache)
        with autocast():
            return batch_token_logps(ref_model, batch, batch.weights != 0, config.logits_chunk)

    if config.gradient_checkpointing:
        # transformers 5 renamed it; 4.x only has the old name
        (getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable)()
        model.config.use_cache = False
    model.train()
    steps_per_epoch = math.ceil(len(train_indices) / (config.batch_size * config.grad_accum))
    total_steps = config.max_steps or math.ceil(config.epochs * steps_per_epoch)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        params, lr=config.learning_rate, weight_decay=config.weight_decay, fused=device.type == "cuda"
    )
    scheduler = get_cosine_schedule_with_warmup(
        optimizer, math.ceil(config.warmup_ratio * total_steps), total_steps
    )
    position = checkpoint.load_state(resume_from, optimizer, scheduler) if resume_from else Position()
    metrics_path = output / "metrics.jsonl"
    kept = []
    if resume_from and metrics_path.exists():  # drop lines logged after the checkpoint we resume from
        kept = [
            ln
            for ln in metrics_path.read_text().splitlines()
            if json.loads(ln).get("step", 0) <= position.step
        ]
    metrics_path.write_text("".join(line + "\n" for line in kept))

    last, eval_metrics = {}, {}
    bar = tqdm(
        total=total_steps, initial=position.step, disable=not config.progress, desc="train", file=sys.stderr
    )
    while position.step < total_steps:
        micro, after = next_step(train_indices, position, config)
        batches = [collate(pairs, indices, config.mask, pad_id) for indices in micro]
        n_pairs = sum(b.num_pairs for b in batches)
        n_chosen = max(int(sum(b.nll_mask.sum() for b in batches)), 1)
        started = time.perf_counter()
        sums = dict.fromkeys(["loss", "nll", "chosen", "rejected", "acc", "lp_c", "lp_r", "tokens"], 0.0)
        for batch in batches:
            batch = batch.to(device)
            ref_token_logps = ref_logps_for(batch)
            with autocast():
                out = forward_pairs(model, batch, ref_token_logps, config)
            # normalise by the whole step so accumulation equals one big batch
            dpo = out.losses.sum() / n_pairs
            nll_term = out.nll_sum / n_chosen
            loss = dpo + config.rpo_alpha * nll_term if config.rpo_alpha else dpo
            if not torch.isfinite(loss):
                rows = ", ".join(pairs[i].row_id for i in batch.pair_index)
                raise NonFiniteLossError(f"loss is {loss.item()} at step {position.step + 1} (rows: {rows})")
            loss.backward()
            sums["loss"] += loss.item()
            sums["nll"] += nll_term.item()
            sums["chosen"] += out.chosen_rewards.sum().item()
            sums["rejected"] += out.rejected_rewards.sum().item()
            sums["acc"] += (out.chosen_rewards > out.rejected_rewards).sum().item()
            sums["lp_c"] += out.chosen_logps.sum().item()
            sums["lp_r"] += out.rejected_logps.sum().item()
            sums["tokens"] += batch.attention_mask.sum().item()
        grad_norm = torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm or float("inf"))
        learning_rate = scheduler.get_last_lr()[0]
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        position = after
        elapsed = time.perf_counter() - started
        last = {
            "step": position.step, "epoch": position.epoch + position.offset / max(len(train_indices), 1),
            "loss": sums["loss"], "rewards/chosen": sums["chosen"] / n_pairs,
            "rewards/rejected": sums["rejected"] / n_pairs, "rewards/accuracies": sums["acc"] / n_pairs,
            "rewards/margins": (sums["chosen"] - sums["rejected"]) / n_pairs,
            "logps/chosen": sums["lp_c"] / n_pairs, "logps/rejected": sums["lp_r"] / n_pairs,
            "nll_loss": sums["nll"], "grad_norm": float(grad_norm), "learning_rate": learning_rate,
            "tokens_per_s": sums["tokens"] / elapsed, "peak_memory_mb": peak_memory_mb(device),
        }  # fmt: skip
        if config.eval_steps and eval_indices and position.step % config.eval_steps == 0:
            eval_metrics = evaluate(
                model, ref_logps_for, pairs, eval_indices, config, pad_id, device, autocast
            )
            last |= eval_metrics
        with metrics_path.open("a") as f:
            f.write(json.dumps(last) + "\n")
        bar.update(1)
        bar.set_postfix(loss=f"{last['loss']:.4f}", acc=f"{last['rewards/accuracies']:.2f}")
        if config.save_steps and position.step % config.save_steps == 0:
            checkpoint.save(output, model, tokenizer, optimizer, scheduler, position)
    bar.close()
    del (
        optimizer,
        scheduler,
    )  # not needed after the last step: free their memory before eval and the final save

    if eval_indices and not (config.eval_steps and position.step % config.eval_steps == 0):
        eval_metrics = evaluate(model, ref_logps_for, pairs, eval_indices, config, pad_id, device, autocast)
        with metrics_path.open("a") as f:
            f.write(json.dumps({"step": position.step, **eval_metrics}) + "\n")
    if eval_metrics:
        print("eval: " + ", ".join(f"{k} {v:.4g}" for k, v in eval_metrics.items()), flush=True)
    if config.gradient_checkpointing:
        (getattr(model, "activation_checkpointing_disable", None) or model.gradient_checkpointing_disable)()
        model.config.use_cache = True
    model.save_pretrained(output / "final")
    tokenizer.save_pretrained(output / "final")
    print(f"saved {output / 'final'} after {position.step} steps", flush=True)
    return TrainResult(output, position.step, report, last, eval_metrics)


def run(args: argparse.Namespace) -> int:
    try:
        config = resolve(args)
    except (ValueError, OSError) as err:
        print(f"focal-dpo train: {err}", file=sys.stderr)
        return 2
    try:
        train(config)
    except (BadRowError, NonFiniteLossError, FileNotFoundError, ValueError) as err:
        print(f"focal-dpo train: {err}", file=sys.stderr)
        return 1
    return 0
