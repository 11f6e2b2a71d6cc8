"""`focal-dpo tiny-model DIR`: a tiny random-initialised causal LM with the project's small tokenizer.

For trying `focal-dpo train` and `focal-dpo eval` without a GPU, a download or a model of your own: the result
loads with `AutoModelForCausalLM.from_pretrained(DIR)` like any hub checkpoint (it writes nonsense, as a random
model does, but every command runs).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from focal_dpo.assets import TOKENIZER_DIR


def write_tiny_model(
    out_dir: str | Path,
    arch: str = "qwen2",
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    seed: int = 0,
) -> Path:
    """Save a random `arch` model (Qwen2 or Llama layout) and the package's tokenizer into `out_dir`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, Qwen2Config

    tokenizer = AutoTokenizer.from_pretrained(str(TOKENIZER_DIR))
    common = dict(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers, num_attention_heads=num_heads, num_key_value_heads=max(1, num_heads // 2),
        max_position_embeddings=2048, bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True,
    )  # fmt: skip
    config = Qwen2Config(**common) if arch == "qwen2" else LlamaConfig(**common)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    from focal_dpo.checkpoint import make_world_readable

    make_world_readable(out)
    return out


def register(subparsers: argparse._SubParsersAction) -> None:
    from focal_dpo.config import one_line_errors

    parser = subparsers.add_parser(
        "tiny-model",
        help="write a tiny random model directory (with the project's small tokenizer) to try things on",
        description="Write a tiny random-initialised causal LM and the project's 4,096-token tokenizer to DIR.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("dir", metavar="DIR", help="directory to create (must not exist, or be empty)")
    parser.add_argument("--arch", choices=("qwen2", "llama"), default="qwen2", help="model layout")
    parser.add_argument("--hidden-size", type=int, default=64, help="hidden size (a multiple of --heads)")
    parser.add_argument("--layers", type=int, default=2, help="decoder layers")
    parser.add_argument("--heads", type=int, default=4, help="attention heads")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    one_line_errors(parser, "focal-dpo tiny-model")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    out = Path(args.dir)

    def fail(message: str) -> int:
        print(f"focal-dpo tiny-model: {message}", file=sys.stderr)
        return 2

    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        return fail(f"{out} already exists and is not an empty directory: choose a new DIR")
    for name in ("hidden_size", "layers", "heads"):
        if getattr(args, name) < 1:
            return fail(f"--{name.replace('_', '-')} must be at least 1")
    if args.hidden_size % args.heads or (args.hidden_size // args.heads) % 2:
        return fail(f"--hidden-size {args.hidden_size} must be --heads {args.heads} times an even number")
    from focal_dpo.quiet import quiet_libraries

    quiet_libraries(progress=False)
    try:
        write_tiny_model(out, args.arch, args.hidden_size, args.layers, args.heads, args.seed)
    except OSError as err:
        return fail(f"{out}: cannot write the model ({err.strerror or err})")
    print(f"wrote a random {args.arch} model ({args.layers} layers, hidden size {args.hidden_size}) and its "
          f"tokenizer to {out}")  # fmt: skip
    return 0
