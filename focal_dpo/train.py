"""`focal-dpo train`: the focal-DPO training loop, top to bottom in one place (nanoGPT style, no Trainer class).

One process or many (torchrun): the same loop. Each optimizer step takes the next slice of the epoch's
stateless shuffled order, every rank runs its share in micro-batches through the policy module (wrapped by DDP
or FSDP2 when launched so), and the step's metrics stay on the device until one all-reduce and one read.
"""

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

from focal_dpo import checkpoint, distributed
from focal_dpo.checkpoint import Position
from focal_dpo.config import OptionError, TrainConfig, resolve, write_config
from focal_dpo.data import BadRowError, DataReport, PairBatch, TokenizedPair, cached_pairs, collate
from focal_dpo.distributed import Ranks
from focal_dpo.loss import dpo_loss
from focal_dpo.optim import build_optimizer, cosine_schedule
from focal_dpo.policy import (
    PARAM_DTYPES,
    Policy,
    add_lora,
    compile_layers,
    gradient_checkpointing,
    load_model,
    trainable_parameters,
)
from focal_dpo.reference import (
    cached_batch_logps,
    load_or_precompute,
    precompute,
    reference_key,
    weights_digest,
)

# what each micro-batch adds to the step's totals (one device tensor, reduced once per step)
SUMS = ("loss", "nll", "chosen", "rejected", "acc", "lp_c", "lp_r", "tokens", "grad_norm")


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or inf; the message names the step and the rows of the micro-batch."""


@dataclass
class PairOutput:
    losses: torch.Tensor | None  # per pair, with grad (None for sft)
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
    policy: torch.nn.Module, batch: PairBatch, ref_token_logps: torch.Tensor | None, config: TrainConfig
) -> PairOutput:
    """Weighted sequence log-probs of both sides, the per-pair DPO/IPO loss and the summed chosen NLL.

    `policy` is a Policy or what wraps it (DDP, FSDP2): called with the token positions whose log-probs the
    loss reads. For `--loss sft` the batch holds chosen rows only and just the NLL is computed.
    """
    nll_mask = batch.nll_mask
    if config.loss == "sft":
        token_logps = policy(batch.input_ids, batch.attention_mask, nll_mask)
        zeros = token_logps.new_zeros(batch.num_pairs)
        chosen = token_logps.sum(-1).detach()
        return PairOutput(None, zeros, zeros, chosen, zeros, -(token_logps * nll_mask).sum())
    positions = batch.weights != 0
    if config.rpo_alpha:
        positions = positions | nll_mask
    token_logps = policy(batch.input_ids, batch.attention_mask, positions)
    weighted = (token_logps * batch.weights).sum(-1)
    ref = (ref_token_logps * batch.weights).sum(-1)
    b = batch.num_pairs
    losses, chosen_rewards, rejected_rewards = dpo_loss(
        weighted[:b], weighted[b:], ref[:b], ref[b:], config.beta, config.loss
    )
    nll_sum = -(token_logps * nll_mask).sum()
    return PairOutput(
        losses, chosen_rewards, rejected_rewards, weighted[:b].detach(), weighted[b:].detach(), nll_sum
    )


def objective(
    out: PairOutput, n_pairs: int, n_chosen: int, config: TrainConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, NLL term) of a micro-batch, normalised by the whole step so accumulation equals one big batch."""
    nll_term = out.nll_sum / max(n_chosen, 1)
    if out.losses is None:
        return nll_term, nll_term
    dpo = out.losses.sum() / n_pairs
    return (dpo + config.rpo_alpha * nll_term if config.rpo_alpha else dpo), nll_term


def epoch_order(train_indices: list[int], seed: int, epoch: int) -> list[int]:
    generator = torch.Generator().manual_seed(seed * 1000 + epoch)
    return [train_indices[i] for i in torch.randperm(len(train_indices), generator=generator).tolist()]


def next_step(
    train_indices: list[int], position: Position, config: TrainConfig, world: int = 1
) -> tuple[list[int], Position]:
    """Every rank's pairs of the next optimizer step and the position after it; a step never spans epochs."""
    order = epoch_order(train_indices, config.seed, position.epoch)
    taken = order[position.offset : position.offset + config.batch_size * config.grad_accum * world]
    offset = position.offset + len(taken)
    after = Position(position.step + 1, position.epoch, offset)
    if offset >= len(order):
        after = Position(position.step + 1, position.epoch + 1, 0)
    return taken, after


def rank_micro_batches(step: list[int], batch_size: int, ranks: Ranks) -> list[tuple[list[int], bool]]:
    """This rank's micro-batches of the step: every world-th pair, in batches. Every rank runs the same number
    of micro-batches (collectives must match), so a rank left short runs fillers flagged True (weight 0)."""
    shards = [step[r :: ranks.world] for r in range(ranks.world)]
    count = max(math.ceil(len(s) / batch_size) for s in shards)
    mine = shards[ranks.rank]
    micro = [mine[i * batch_size : (i + 1) * batch_size] for i in range(count)]
    return [(m, False) if m else ([step[0]], True) for m in micro]


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def split_indices(n: int, eval_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    n_eval = int(round(n * eval_fraction))
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    return sorted(order[n_eval:]), sorted(order[:n_eval])


@torch.no_grad()
def evaluate(wrapped, ref_logps_for, pairs, eval_indices, config, pad_id, device, autocast, ranks) -> dict:
    """Mean loss and reward accuracy (chosen reward > rejected reward) over the held-out pairs (sft: the
    token-mean NLL); each rank takes every world-th pair, padded so all run the same batches."""
    sft = config.loss == "sft"
    inner = getattr(wrapped, "module", wrapped)
    inner.eval()
    mine = eval_indices[ranks.rank :: ranks.world]
    count = math.ceil(math.ceil(len(eval_indices) / ranks.world) / config.batch_size)
    totals = torch.zeros(5, dtype=torch.float64, device=device)  # loss, correct, margin, nll, tokens
    for i in range(count):
        indices = mine[i * config.batch_size : (i + 1) * config.batch_size]
        weight = 1.0 if indices else 0.0
        batch = collate(pairs, indices or eval_indices[:1], config.mask, pad_id, rejected=not sft).to(device)
        with autocast():
            out = forward_pairs(inner, batch, None if sft else ref_logps_for(batch), config)
        margin = out.chosen_rewards - out.rejected_rewards
        losses = out.losses if out.losses is not None else out.nll_sum.new_zeros(1)
        totals += weight * torch.stack([losses.double().sum(), (margin > 0).double().sum(), margin.double().sum(),
                                        out.nll_sum.double(), batch.nll_mask.sum().double()])  # fmt: skip
    inner.train()
    if hasattr(inner, "reshard"):  # FSDP2 keeps the root unsharded after a forward without backward
        inner.reshard()
    loss, correct, margins, nll, tokens = distributed.all_reduce_sum(totals, ranks).tolist()
    n = len(eval_indices)
    if sft:
        return {"eval/loss": nll / max(tokens, 1), "eval/pairs": n}
    return {"eval/loss": loss / n, "eval/rewards/accuracies": correct / n, "eval/rewards/margins": margins / n,
            "eval/pairs": n}  # fmt: skip


def load_tokenizer(source: str):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as err:
        raise OptionError(f"--model {source}: cannot load its tokenizer ({first_line(err)})") from None


def first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def build_policy(config: TrainConfig, resume_from: Path | None, device: torch.device) -> Policy:
    """The trained model inside a Policy: full weights (from the checkpoint when resuming) or base + LoRA."""
    if not config.lora_r:
        return Policy(
            load_model(str(resume_from or config.model), device, config.param_dtype), config.logits_chunk
        )
    base = load_model(config.model, device, config.param_dtype, config.load_in_4bit)
    if resume_from:
        from peft import PeftModel

        return Policy(
            PeftModel.from_pretrained(base, str(resume_from), is_trainable=True), config.logits_chunk
        )
    model = add_lora(base, config.lora_r, config.lora_alpha, config.lora_dropout, config.lora_target_modules,
                     config.gradient_checkpointing)  # fmt: skip
    return Policy(model, config.logits_chunk)


def train(config: TrainConfig, status: dict | None = None) -> TrainResult:
    """Run `focal-dpo train` with `config` in this process (one rank of a torchrun launch, or alone).

    `status["step"]` follows the optimizer steps done, for whoever reports an interruption."""
    ranks = distributed.ranks_from_env()
    strategy = distributed.strategy_for(config.strategy, ranks)
    device = distributed.start(ranks)
    try:
        return _train(config, ranks, strategy, device, {} if status is None else status)
    finally:
        distributed.stop()


def _train(
    config: TrainConfig, ranks: Ranks, strategy: str, device: torch.device, status: dict
) -> TrainResult:
    from tqdm import tqdm

    output, sft = Path(config.output), config.loss == "sft"
    if config.load_in_4bit and device.type != "cuda":
        raise OptionError("--load-in-4bit needs a CUDA GPU (bitsandbytes 4-bit); on CPU use LoRA without it")
    if config.load_in_4bit and strategy == "fsdp":
        raise OptionError("--load-in-4bit is not supported with --strategy fsdp: use --strategy ddp")
    if ranks.main:
        output.mkdir(parents=True, exist_ok=True)
        write_config(config, output / "config.yaml")
    random.seed(config.seed), np.random.seed(config.seed), torch.manual_seed(config.seed)
    use_bf16 = (
        config.bf16 if config.bf16 is not None else device.type == "cuda" and torch.cuda.is_bf16_supported()
    )
    # fp32 weights compute in bf16 through autocast, or through FSDP2's mixed-precision policy
    fsdp_bf16 = use_bf16 and config.param_dtype == "fp32" and strategy == "fsdp"
    autocast_on = use_bf16 and config.param_dtype == "fp32" and strategy != "fsdp"

    def autocast():
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast_on)

    # data: tokenize (rank 0, in parallel; cached on disk), mask, drop and report before any model is loaded
    tokenizer = load_tokenizer(config.model)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    cache_dir = Path(config.data_cache) if config.data_cache else output / "data_cache"
    with distributed.main_first(ranks):
        pairs, report, from_cache = cached_pairs(
            config.data, tokenizer, cache_dir, mask_mode=config.mask, max_length=config.max_length,
            max_prompt_length=config.max_prompt_length, context=config.context, chat_template=config.chat_template,
            skip_bad=config.skip_bad, sft=sft, workers=config.tokenize_workers if ranks.main else 1,
        )  # fmt: skip
    if ranks.main:
        print("\n".join("data: " + line for line in report.lines()), flush=True)
        if from_cache:
            print(f"data: tokenized pairs read from {cache_dir}", flush=True)
    if not pairs:
        raise BadRowError(f"{config.data}: no trainable pairs left (see the data report above)")
    train_indices, eval_indices = split_indices(len(pairs), config.eval_fraction, config.seed)
    if not train_indices:
        raise OptionError(
            f"--eval-fraction {config.eval_fraction} leaves no pair of {config.data} to train on"
        )

    resume_from = checkpoint.latest(output) if config.resume else None
    if config.resume and ranks.main:
        print(f"resuming from {resume_from}" if resume_from else f"no checkpoint in {output}: starting fresh")
    try:
        policy = build_policy(config, resume_from, device).train()
    except OSError as err:
        raise OptionError(
            f"--model {resume_from or config.model}: cannot load the model ({first_line(err)})"
        ) from None
    if config.compile:
        compile_layers(policy)
    with gradient_checkpointing(policy.causal_lm, config.gradient_checkpointing):
        compute_dtype = torch.bfloat16 if fsdp_bf16 else None
        wrapped = distributed.wrap(policy, strategy, device, compute_dtype)
        params = trainable_parameters(policy)  # under FSDP2 the sharded DTensors, the optimizer's to own
        numerics = (
            f"{config.param_dtype} autocast={autocast_on} fsdp-bf16={fsdp_bf16} 4bit={config.load_in_4bit}"
        )
        ref_logps_for = None if sft else reference(config, wrapped, pairs, resume_from, strategy, device,
                                                   autocast, compute_dtype, numerics, pad_id, ranks)  # fmt: skip

        steps_per_epoch = math.ceil(
            len(train_indices) / (config.batch_size * config.grad_accum * ranks.world)
        )
        total_steps = config.max_steps or math.ceil(config.epochs * steps_per_epoch)
        optimizer = build_optimizer(config.optim, params, config.learning_rate, config.weight_decay, device)
        scheduler = cosine_schedule(optimizer, math.ceil(config.warmup_ratio * total_steps), total_steps)
        position = Position()
        if resume_from:
            position = checkpoint.load_state(resume_from, optimizer, scheduler, strategy, ranks)
        status["step"] = position.step
        metrics_path = output / "metrics.jsonl"
        if ranks.main:
            kept = []
            if resume_from and metrics_path.exists():  # drop lines logged after the checkpoint we resume from
                lines = metrics_path.read_text().splitlines()
                kept = [ln for ln in lines if json.loads(ln).get("step", 0) <= position.step]
            metrics_path.write_text("".join(line + "\n" for line in kept))

        last, eval_metrics = {}, {}
        bar = tqdm(total=total_steps, initial=position.step, disable=not (config.progress and ranks.main),
                   desc="train", file=sys.stderr)  # fmt: skip
        while position.step < total_steps:
            step, after = next_step(train_indices, position, config, ranks.world)
            micro = rank_micro_batches(step, config.batch_size, ranks)
            n_pairs = len(step)
            n_chosen = sum(len(pairs[i].chosen_ids) for i in step)
            totals = torch.zeros(len(SUMS) + ranks.world * len(micro), dtype=torch.float64, device=device)
            started = time.perf_counter()
            for k, (indices, filler) in enumerate(micro):
                batch = collate(pairs, indices, config.mask, pad_id, rejected=not sft)
                tokens = 0 if filler else int(batch.attention_mask.sum())
                batch = batch.to(device)
                ref_token_logps = None if sft else ref_logps_for(batch)
                with distributed.gradient_sync(wrapped, strategy, sync=k == len(micro) - 1):
                    with autocast():
                        out = forward_pairs(wrapped, batch, ref_token_logps, config)
                    loss, nll_term = objective(out, n_pairs, n_chosen, config)
                    # DDP and FSDP average gradients over ranks; the loss is already a share of the global sum
                    (loss * (0.0 if filler else float(ranks.world))).backward()
                if not filler:
                    margin_won = (out.chosen_rewards > out.rejected_rewards).sum()
                    totals[:8] += torch.stack([loss.detach(), nll_term.detach(), out.chosen_rewards.sum(),
                                               out.rejected_rewards.sum(), margin_won, out.chosen_logps.sum(),
                                               out.rejected_logps.sum(), loss.new_tensor(tokens)]).double()  # fmt: skip
                    totals[len(SUMS) + ranks.rank * len(micro) + k] = (
                        ~torch.isfinite(loss.detach())
                    ).double()
            grad_norm = torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm or float("inf"))
            grad_norm = grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm
            totals[8] = grad_norm.double() / ranks.world  # the same global norm on every rank
            values = distributed.all_reduce_sum(totals, ranks).tolist()  # the step's one device sync
            bad = [i for i, flag in enumerate(values[len(SUMS) :]) if flag]
            if bad:
                rank, k = divmod(bad[0], len(micro))
                indices = rank_micro_batches(step, config.batch_size, Ranks(rank, ranks.world))[k][0]
                rows = ", ".join(pairs[i].row_id for i in indices)
                raise NonFiniteLossError(f"loss is {values[0]} at step {position.step + 1} (rows: {rows})")
            learning_rate = scheduler.get_last_lr()[0]
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            position = after
            status["step"] = position.step
            sums = dict(zip(SUMS, values, strict=False))
            last = {
                "step": position.step, "epoch": position.epoch + position.offset / max(len(train_indices), 1),
                "loss": sums["loss"], "nll_loss": sums["nll"], "logps/chosen": sums["lp_c"] / n_pairs,
                "grad_norm": sums["grad_norm"], "learning_rate": float(learning_rate),
                "tokens_per_s": sums["tokens"] / (time.perf_counter() - started),
                "peak_memory_mb": peak_memory_mb(device),
            }  # fmt: skip
            if not sft:
                last |= {
                    "rewards/chosen": sums["chosen"] / n_pairs, "rewards/rejected": sums["rejected"] / n_pairs,
                    "rewards/accuracies": sums["acc"] / n_pairs,
                    "rewards/margins": (sums["chosen"] - sums["rejected"]) / n_pairs,
                    "logps/rejected": sums["lp_r"] / n_pairs,
                }  # fmt: skip
            if config.eval_steps and eval_indices and position.step % config.eval_steps == 0:
                eval_metrics = evaluate(wrapped, ref_logps_for, pairs, eval_indices, config, pad_id, device,
                                        autocast, ranks)  # fmt: skip
                last |= eval_metrics
            if ranks.main:
                with metrics_path.open("a") as f:
                    f.write(json.dumps(last) + "\n")
                bar.update(1)
                bar.set_postfix(
                    loss=f"{last['loss']:.4f}",
                    **({} if sft else {"acc": f"{last['rewards/accuracies']:.2f}"}),
                )
            if config.save_steps and position.step % config.save_steps == 0:
                checkpoint.save(output, policy, strategy, tokenizer, optimizer, scheduler, position, ranks)
        bar.close()
        del optimizer, scheduler  # not needed after the last step: free their memory before eval and saving

        if eval_indices and not (config.eval_steps and position.step % config.eval_steps == 0):
            eval_metrics = evaluate(wrapped, ref_logps_for, pairs, eval_indices, config, pad_id, device, autocast,
                                    ranks)  # fmt: skip
            if ranks.main:
                with metrics_path.open("a") as f:
                    f.write(json.dumps({"step": position.step, **eval_metrics}) + "\n")
        if eval_metrics and ranks.main:
            print("eval: " + ", ".join(f"{k} {v:.4g}" for k, v in eval_metrics.items()), flush=True)
    save_final(config, policy, strategy, tokenizer, output, ranks)
    if ranks.main:
        print(f"saved {output / 'final'} after {position.step} steps", flush=True)
    return TrainResult(output, position.step, report, last, eval_metrics)


def reference(config, wrapped, pairs, resume_from, strategy, device, autocast, compute_dtype, numerics, pad_id,
              ranks):  # fmt: skip
    """A function batch -> reference per-token log-probs: from the on-disk cache (`--ref precompute`), or live.

    The reference is the initial policy unless --ref-model: with LoRA the base with the adapter disabled (no
    second copy); for full fine-tuning the policy itself before its first step, otherwise a loaded copy.
    """
    ref_source = config.ref_model or config.model
    is_base = ref_source == config.model
    reuse_policy = is_base and (config.lora_r > 0 or (resume_from is None and config.ref == "precompute"))

    def separate_reference():
        model = load_model(ref_source, device, config.param_dtype).requires_grad_(False)
        ref = Policy(model, config.logits_chunk).eval()
        return distributed.wrap(ref, "fsdp", device, compute_dtype) if strategy == "fsdp" else ref

    if config.ref == "precompute":
        digest = distributed.broadcast_object(weights_digest(ref_source) if ranks.main else None, ranks)
        key = reference_key(digest, pairs, numerics, config.mask)

        def compute():
            ref = wrapped if reuse_policy else separate_reference()
            return precompute(ref, pairs, pad_id, config.batch_size, device, autocast,
                              config.progress and ranks.main, config.mask, ranks)  # fmt: skip

        cache = load_or_precompute(
            Path(config.ref_cache or Path(config.output) / "ref_cache"), key, compute, ranks
        )
        return lambda batch: cached_batch_logps(batch, cache)

    ref = getattr(wrapped, "module", wrapped) if is_base and config.lora_r else separate_reference()

    @torch.no_grad()
    def live(batch: PairBatch) -> torch.Tensor:
        with ref.reference(), autocast():
            return ref(batch.input_ids, batch.attention_mask, batch.weights != 0)

    return live


def save_final(
    config: TrainConfig, policy: Policy, strategy: str, tokenizer, output: Path, ranks: Ranks
) -> None:
    """final/: the model in its training dtype; with LoRA the adapter, or with --merge the merged model (and the
    adapter in OUTPUT/adapter)."""
    if config.lora_r and config.merge:
        adapter = output / "adapter"
        checkpoint.save_model(adapter, policy, strategy, tokenizer, ranks)
        if ranks.main:
            checkpoint.merge_adapter(config.model, adapter, output / "final", PARAM_DTYPES[config.param_dtype],
                                     tokenizer)  # fmt: skip
        distributed.barrier(ranks)
        return
    checkpoint.save_model(output / "final", policy, strategy, tokenizer, ranks)


def resume_command(argv: list[str], world: int) -> str:
    """The command that continues an interrupted run: the same arguments plus --resume."""
    import shlex

    args = list(argv) + ([] if "--resume" in argv else ["--resume"])
    launcher = f"torchrun --nproc-per-node {world} --no-python " if world > 1 else ""
    return launcher + "focal-dpo " + shlex.join(args)


def run(args: argparse.Namespace, config: TrainConfig | None = None) -> int:
    """`focal-dpo train`: exit 0 done, 2 bad usage or input, 1 a run that failed, 130 interrupted.

    `config`: the options already resolved and checked (`focal_dpo.config` does it before importing torch)."""
    from focal_dpo.quiet import quiet_libraries
    from focal_dpo.sources import check_inputs

    ranks = distributed.ranks_from_env()

    def fail(message: str, code: int) -> int:
        if ranks.main:
            print(f"focal-dpo train: {message}", file=sys.stderr, flush=True)
        return code

    try:
        if config is None:
            config = resolve(args)
            check_inputs(config)
        quiet_libraries(config.progress)
    except (OptionError, BadRowError) as err:
        return fail(str(err), 2)
    status: dict = {}
    try:
        train(config, status)
    except (OptionError, BadRowError) as err:
        return fail(str(err), 2)
    except NonFiniteLossError as err:
        return fail(str(err), 1)
    except torch.OutOfMemoryError:
        return fail(f"out of memory at step {status.get('step', 0) + 1}: lower --batch-size (raise --grad-accum "
                    "to keep the step), or use --gradient-checkpointing, --param-dtype bf16 or --lora-r", 1)  # fmt: skip
    except OSError as err:  # a model or tokenizer that does not load, a disk that fills up
        return fail(first_line(err), 1)
    except KeyboardInterrupt:
        last = checkpoint.latest(Path(config.output))
        where = (
            f"the last checkpoint is {last}"
            if last
            else "no checkpoint was written yet (--save-steps N keeps one)"
        )
        argv = getattr(args, "argv", None) or ["train", *sys.argv[1:]]
        hint = (
            f"continue with: {resume_command(argv, ranks.world)}"
            if last
            else "rerun the same command to start again"
        )
        return fail(f"interrupted at step {status.get('step', 0) + 1}; {where}; {hint}", 130)
    return 0


__all__ = ["NonFiniteLossError", "TokenizedPair", "forward_pairs", "load_model", "train"]
