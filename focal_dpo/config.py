"""Training options: one dataclass, settable from the command line and from a YAML file (CLI wins).

Also registers `focal-dpo train`, so building the command line never imports torch (the loop is imported when
the command runs).
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

MASK_MODES = ("target", "full", "symmetric", "hybrid")


@dataclass
class TrainConfig:
    model: str = ""
    data: str = ""
    output: str = ""
    mask: str = "target"
    context: int = 0
    loss: str = "sigmoid"
    beta: float = 0.1
    rpo_alpha: float = 1.0
    learning_rate: float = 5e-6
    weight_decay: float = 0.0
    epochs: float = 1.0
    max_steps: int = 0  # > 0 overrides epochs
    batch_size: int = 4
    grad_accum: int = 1
    warmup_ratio: float = 0.03
    max_grad_norm: float = 1.0
    max_length: int = 2048
    max_prompt_length: int = 1024
    ref: str = "precompute"
    ref_model: str | None = None
    ref_cache: str | None = None  # default OUTPUT/ref_cache
    gradient_checkpointing: bool = False
    bf16: bool | None = None  # None: on when a CUDA GPU supports it
    seed: int = 42
    save_steps: int = 0  # 0: only the final model
    eval_steps: int = 0  # 0: evaluate at the end only
    resume: bool = False
    eval_fraction: float = 0.0
    chat_template: bool = False
    skip_bad: bool = False
    logits_chunk: int = 0  # 0: about 64 MiB of fp32 logits per chunk (110 positions at a 152k vocabulary)
    progress: bool = True


HELP = {
    "model": "policy model: a local directory or a hub name",
    "data": "JSONL (or json/parquet/csv) with prompt, chosen, rejected and optional chosen_spans/rejected_spans",
    "output": "output directory (metrics.jsonl, config.yaml, checkpoint-N/, final/)",
    "mask": "which tokens carry the DPO weight: target (paper), full (vanilla DPO), symmetric (D+ and D-), hybrid",
    "context": "widen D- by this many lines",
    "loss": "sigmoid (DPO) or ipo",
    "rpo_alpha": "weight of the NLL on chosen completions (0 turns it off)",
    "epochs": "passes over the training split (fractions allowed)",
    "max_steps": "optimizer steps; > 0 overrides --epochs",
    "batch_size": "pairs per micro-batch",
    "grad_accum": "micro-batches per optimizer step",
    "max_length": "prompt + completion tokens; completions are cut from the right",
    "max_prompt_length": "prompt tokens; prompts are cut from the left",
    "ref": "precompute: reference log-probs computed once and cached on disk; live: a frozen copy in memory",
    "ref_model": "reference checkpoint (default: the initial policy)",
    "ref_cache": "directory of cached reference log-probs (default OUTPUT/ref_cache)",
    "bf16": "bf16 autocast (default: on when the CUDA GPU supports it)",
    "save_steps": "checkpoint every N optimizer steps (0: none)",
    "eval_steps": "evaluate every N optimizer steps (0: at the end only)",
    "resume": "continue from the latest OUTPUT/checkpoint-N",
    "eval_fraction": "fraction of pairs held out to report reward accuracy",
    "chat_template": "wrap the prompt as a user message with the tokenizer's chat template",
    "skip_bad": "skip and count bad rows instead of stopping",
    "logits_chunk": "positions per chunk of LM-head logits (0: automatic, ~64 MiB of fp32 logits)",
    "progress": "show a progress bar",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Every TrainConfig field as --option; defaults are left unset so the YAML file can fill them."""
    parser.add_argument("--config", help="YAML file with any of these options (underscores in names)")
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        shown = "" if f.default in ("", None) else f"default: {f.default}"
        text = "; ".join(part for part in (HELP.get(f.name, ""), shown) if part)
        kwargs: dict[str, Any] = {"default": argparse.SUPPRESS, "help": text or None}
        if f.type in ("bool", "bool | None"):
            kwargs["action"] = argparse.BooleanOptionalAction
        elif f.name == "mask":
            kwargs["choices"] = MASK_MODES
        elif f.name == "loss":
            kwargs["choices"] = ("sigmoid", "ipo")
        elif f.name == "ref":
            kwargs["choices"] = ("precompute", "live")
        else:
            kwargs["type"] = {"int": int, "float": float}.get(str(f.type), str)
        parser.add_argument(flag, **kwargs)


def resolve(args: argparse.Namespace) -> TrainConfig:
    """Dataclass defaults < YAML file < command line; unknown YAML keys are an error naming the file."""
    values: dict[str, Any] = {}
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    if getattr(args, "config", None):
        loaded = yaml.safe_load(Path(args.config).read_text(encoding="utf-8")) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{args.config}: expected a mapping of option: value")
        unknown = sorted(set(k.replace("-", "_") for k in loaded) - names)
        if unknown:
            raise ValueError(f"{args.config}: unknown option(s) {', '.join(unknown)}")
        values.update({k.replace("-", "_"): v for k, v in loaded.items()})
    values.update({k: v for k, v in vars(args).items() if k in names})
    config = TrainConfig(**values)
    validate(config)
    return config


def validate(config: TrainConfig) -> None:
    for name in ("model", "data", "output"):
        if not getattr(config, name):
            raise ValueError(f"--{name} is required (on the command line or in the YAML file)")
    if config.mask not in MASK_MODES:
        raise ValueError(f"mask {config.mask!r}: use one of {', '.join(MASK_MODES)}")
    if config.loss not in ("sigmoid", "ipo"):
        raise ValueError(f"loss {config.loss!r}: use sigmoid or ipo")
    if config.ref not in ("precompute", "live"):
        raise ValueError(f"ref {config.ref!r}: use precompute or live")
    if config.batch_size < 1 or config.grad_accum < 1:
        raise ValueError("--batch-size and --grad-accum must be at least 1")
    if not 0.0 <= config.eval_fraction < 1.0:
        raise ValueError("--eval-fraction must be in [0, 1)")


def write_config(config: TrainConfig, path: Path) -> None:
    path.write_text(yaml.safe_dump(dataclasses.asdict(config), sort_keys=False), encoding="utf-8")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a causal LM on preference pairs with the focal (Target-)DPO loss",
        description="Focal DPO: the rejected side is weighted only on the tokens the fix changed (D-).",
    )
    add_arguments(parser)
    parser.set_defaults(func=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    from focal_dpo.train import run

    return run(args)
