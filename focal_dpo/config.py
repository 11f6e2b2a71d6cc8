"""Training options: one dataclass, settable from the command line and from a YAML file (CLI wins).

Every option's type, default, choices and help live here, and YAML values are converted and checked by the
option's type before anything loads. Also registers `focal-dpo train`, so building the command line never
imports torch (the loop is imported when the command runs).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

MASK_MODES = ("target", "full", "symmetric", "hybrid")
LOSSES = ("sigmoid", "ipo", "sft")
REF_MODES = ("precompute", "live")
OPTIMIZER_NAMES = ("adamw", "adamw8bit", "adamw4bit", "bnb-adamw8bit", "bnb-paged-adamw8bit")
PARAM_DTYPE_NAMES = ("fp32", "bf16")
STRATEGIES = ("auto", "ddp", "fsdp")
CHOICES = {
    "mask": MASK_MODES,
    "loss": LOSSES,
    "ref": REF_MODES,
    "optim": OPTIMIZER_NAMES,
    "param_dtype": PARAM_DTYPE_NAMES,
    "strategy": STRATEGIES,
}


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
    optim: str = "adamw"
    param_dtype: str = "fp32"
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
    lora_r: int = 0  # 0: full fine-tuning
    lora_alpha: float = 16.0
    lora_dropout: float = 0.0
    lora_target_modules: str = "all-linear"
    merge: bool = False
    load_in_4bit: bool = False
    strategy: str = "auto"
    gradient_checkpointing: bool = False
    compile: bool = False
    bf16: bool | None = None  # None: on when a CUDA GPU supports it
    seed: int = 42
    save_steps: int = 0  # 0: only the final model
    eval_steps: int = 0  # 0: evaluate at the end only
    resume: bool = False
    eval_fraction: float = 0.0
    chat_template: bool = False
    skip_bad: bool = False
    logits_chunk: int = 0  # 0: about 64 MiB of fp32 logits per chunk (110 positions at a 152k vocabulary)
    tokenize_workers: int = 0
    data_cache: str | None = None  # default OUTPUT/data_cache
    progress: bool = True


HELP = {
    "model": "policy model: a local directory or a hub name (required)",
    "data": "JSONL (or json/parquet/csv) with prompt, chosen, rejected and optional chosen_spans/rejected_spans "
    "(required)",
    "output": "output directory: metrics.jsonl, config.yaml, checkpoint-N/, final/ (required)",
    "mask": "tokens that carry the DPO weight: target (paper: all of chosen, D- of rejected), full (vanilla "
    "DPO), symmetric (D+ and D-), hybrid (half of each batch full)",
    "context": "widen D- to whole lines plus this many lines around each change",
    "loss": "sigmoid (DPO), ipo, or sft (NLL on the chosen completion only: no rejected side, no reference)",
    "beta": "DPO/IPO temperature",
    "rpo_alpha": "weight of the NLL on chosen completions added to the DPO loss (0 turns it off)",
    "learning_rate": "peak learning rate of the cosine schedule",
    "weight_decay": "decoupled weight decay",
    "optim": "adamw (torch; with bf16 weights: stochastic rounding), adamw8bit / adamw4bit (torchao), "
    "bnb-adamw8bit / bnb-paged-adamw8bit (bitsandbytes)",
    "param_dtype": "dtype the weights are trained and saved in: fp32 (bf16 compute via --bf16) or bf16 "
    "(half the memory; the optimizer rounds updates stochastically)",
    "epochs": "passes over the training split (fractions allowed)",
    "max_steps": "optimizer steps; > 0 overrides --epochs",
    "batch_size": "pairs per micro-batch on each process",
    "grad_accum": "micro-batches per optimizer step",
    "warmup_ratio": "fraction of the steps with linear warmup",
    "max_grad_norm": "gradient clipping norm (0: no clipping)",
    "max_length": "prompt + completion tokens; completions are cut from the right",
    "max_prompt_length": "prompt tokens; the prompt's content is cut from the left, its BOS and chat header kept",
    "ref": "precompute: reference log-probs computed once and cached on disk; live: the reference runs beside "
    "the policy",
    "ref_model": "reference checkpoint (default: the initial policy; with LoRA, the base with the adapter off)",
    "ref_cache": "directory of cached reference log-probs (default: OUTPUT/ref_cache)",
    "lora_r": "LoRA rank (0: full fine-tuning)",
    "lora_alpha": "LoRA scaling numerator (scale = alpha / r)",
    "lora_dropout": "dropout on the LoRA adapter's input",
    "lora_target_modules": "comma-separated module names for LoRA, or all-linear (every linear layer but the "
    "LM head)",
    "merge": "with LoRA: write final/ as a merged model (the adapter goes to OUTPUT/adapter)",
    "load_in_4bit": "QLoRA: a 4-bit NF4 base via bitsandbytes (CUDA only; needs --lora-r)",
    "strategy": "under torchrun: ddp (replicated weights) or fsdp (FSDP2, sharded per decoder layer); auto: ddp "
    "when launched with several processes",
    "gradient_checkpointing": "activation checkpointing: recompute each decoder layer's activations in "
    "backward",
    "compile": "torch.compile each decoder layer",
    "bf16": "bf16 compute (autocast; under fsdp a mixed-precision policy) with fp32 weights (default: on when "
    "the CUDA GPU supports it)",
    "seed": "seed of the data order, the split and everything random",
    "save_steps": "checkpoint every N optimizer steps (0: none)",
    "eval_steps": "evaluate every N optimizer steps (0: at the end only)",
    "resume": "continue from the latest OUTPUT/checkpoint-N (same number of processes)",
    "eval_fraction": "fraction of pairs held out to report reward accuracy (or NLL for sft)",
    "chat_template": "wrap the prompt as a user message with the tokenizer's chat template",
    "skip_bad": "skip and count bad rows (invalid JSON, missing fields, bad spans) instead of stopping",
    "logits_chunk": "positions per chunk of LM-head logits (0: automatic, about 64 MiB of fp32 logits)",
    "tokenize_workers": "processes that tokenize the data (0: one per CPU, up to 8, for large files)",
    "data_cache": "directory of tokenized pairs, keyed by data, tokenizer and settings (default: "
    "OUTPUT/data_cache)",
    "progress": "show progress bars",
}


ALIASES = {"learning_rate": ["--lr"], "gradient_checkpointing": ["--activation-checkpointing"]}


class OptionError(ValueError):
    """A bad option value; the message names the option (and the YAML file it came from)."""


def field_kind(f: dataclasses.Field) -> str:
    """'int', 'float', 'bool' or 'str' (optional types count as their base type)."""
    return str(f.type).split(" | ")[0]


def default_text(f: dataclasses.Field) -> str:
    if f.default is None:
        return {"ref_cache": "OUTPUT/ref_cache", "data_cache": "OUTPUT/data_cache", "ref_model": "the policy",
                "bf16": "on with a bf16 CUDA GPU"}.get(f.name, "none")  # fmt: skip
    if f.default == "":
        return "required"
    if isinstance(f.default, bool):
        return "on" if f.default else "off"
    return str(f.default)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Every TrainConfig field as --option; defaults are left unset so the YAML file can fill them."""
    parser.add_argument("--config", metavar="FILE.yaml", help="YAML file with any of these options "
                        "(underscores in names); the command line wins (default: none)")  # fmt: skip
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        text = f"{HELP[f.name]} (default: {default_text(f)})"
        kwargs: dict[str, Any] = {"default": argparse.SUPPRESS, "help": text}
        kind = field_kind(f)
        if kind == "bool":
            kwargs["action"] = argparse.BooleanOptionalAction
        elif f.name in CHOICES:
            kwargs["choices"] = CHOICES[f.name]
        else:
            kwargs["type"] = {"int": int, "float": float}.get(kind, str)
            kwargs["metavar"] = {"int": "N", "float": "X"}.get(kind, f.name.upper())
        parser.add_argument(flag, *ALIASES.get(f.name, []), **kwargs)


def convert(name: str, value: Any, where: str) -> Any:
    """A YAML value as the option's type: '5e-6' -> 5e-06 for a float, 'two' for an int is an error."""
    f = {f.name: f for f in dataclasses.fields(TrainConfig)}[name]
    kind = field_kind(f)
    if value is None and f.default is None:
        return None
    wrong = OptionError(f"{where}: {name}: expected {_KIND_WORDS[kind]}, got {value!r}")
    if kind == "bool":
        if not isinstance(value, bool):
            raise wrong
        return value
    if kind == "int":
        if isinstance(value, bool):
            raise wrong
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                raise wrong from None
        raise wrong
    if kind == "float":
        if isinstance(value, bool):
            raise wrong
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads 5e-6 (no dot) as a string
            try:
                return float(value.strip())
            except ValueError:
                raise wrong from None
        raise wrong
    if isinstance(value, (dict, list)):
        raise wrong
    return str(value)


_KIND_WORDS = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string"}


def read_yaml(path: str) -> dict[str, Any]:
    """The options in a YAML file, converted to their types; every problem is an OptionError naming the file."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise OptionError(f"{path}: no such config file") from None
    except IsADirectoryError:
        raise OptionError(f"{path}: is a directory; --config takes a YAML file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise OptionError(f"{path}: cannot read the config file ({err})") from None
    try:
        loaded = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise OptionError(f"{path}: not valid YAML ({at}{problem}); check the indentation") from None
    if not isinstance(loaded, dict):
        raise OptionError(f"{path}: expected a mapping of option: value, one per line")
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {str(k).replace("-", "_"): v for k, v in loaded.items()}
    unknown = sorted(set(values) - names)
    if unknown:
        raise OptionError(f"{path}: unknown option(s) {', '.join(unknown)} (see focal-dpo train --help)")
    return {name: convert(name, value, path) for name, value in values.items()}


def resolve(args: argparse.Namespace) -> TrainConfig:
    """Dataclass defaults < YAML file < command line, then checked (OptionError naming the option)."""
    values: dict[str, Any] = {}
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    if getattr(args, "config", None):
        values.update(read_yaml(args.config))
    values.update({k: v for k, v in vars(args).items() if k in names})
    config = TrainConfig(**values)
    validate(config, getattr(args, "config", None))
    return config


def validate(config: TrainConfig, config_file: str | None = None) -> None:
    def fail(message: str) -> None:
        raise OptionError(message if not config_file else f"{message} (options from {config_file} and the "
                          "command line)")  # fmt: skip

    for name in ("model", "data", "output"):
        if not getattr(config, name):
            fail(f"--{name} is required (on the command line or in the YAML file)")
    for name, allowed in CHOICES.items():
        if getattr(config, name) not in allowed:
            fail(f"--{name.replace('_', '-')} {getattr(config, name)!r}: use one of {', '.join(allowed)}")
    for name in ("batch_size", "grad_accum"):
        if getattr(config, name) < 1:
            fail(f"--{name.replace('_', '-')} must be at least 1")
    for name in ("max_steps", "save_steps", "eval_steps", "context", "logits_chunk", "tokenize_workers",
                 "lora_r", "max_prompt_length"):  # fmt: skip
        if getattr(config, name) < 0:
            fail(f"--{name.replace('_', '-')} must be 0 or more")
    if config.max_length < 2:
        fail("--max-length must be at least 2")
    for name in ("learning_rate", "beta", "epochs"):
        if not getattr(config, name) > 0:
            fail(f"--{name.replace('_', '-')} must be greater than 0")
    for name in ("weight_decay", "rpo_alpha", "max_grad_norm", "lora_alpha"):
        if getattr(config, name) < 0:
            fail(f"--{name.replace('_', '-')} must be 0 or more")
    if not 0.0 <= config.eval_fraction < 1.0:
        fail("--eval-fraction must be in [0, 1)")
    if not 0.0 <= config.warmup_ratio <= 1.0:
        fail("--warmup-ratio must be in [0, 1]")
    if not 0.0 <= config.lora_dropout < 1.0:
        fail("--lora-dropout must be in [0, 1)")
    if (config.merge or config.load_in_4bit) and not config.lora_r:
        fail(f"--{'merge' if config.merge else 'load-in-4bit'} needs LoRA: set --lora-r (e.g. 16)")


def write_config(config: TrainConfig, path: Path) -> None:
    path.write_text(yaml.safe_dump(dataclasses.asdict(config), sort_keys=False), encoding="utf-8")


def one_line_errors(parser: argparse.ArgumentParser, prog: str) -> None:
    """argparse's usage errors as one stderr line naming the option, exit 2."""

    def error(message: str) -> None:
        print(f"{prog}: {message} (see {prog} --help)", file=sys.stderr)
        sys.exit(2)

    parser.error = error  # type: ignore[method-assign]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a causal LM on preference pairs with the focal (Target-)DPO loss",
        description="Focal DPO: the rejected side is weighted only on the tokens the fix changed (D-). "
        "Several processes: torchrun --nproc-per-node N focal-dpo train ... --strategy ddp|fsdp.",
    )
    add_arguments(parser)
    one_line_errors(parser, "focal-dpo train")
    parser.set_defaults(func=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    # options and inputs are checked before torch is imported, so a typo costs no import time
    from focal_dpo.sources import check_inputs
    from focal_dpo.tokenize import BadRowError

    try:
        config = resolve(args)
        check_inputs(config)
    except (OptionError, BadRowError) as err:
        if os.environ.get("RANK", "0") == "0":
            print(f"focal-dpo train: {err}", file=sys.stderr)
        return 2
    from focal_dpo.train import run

    return run(args, config)
