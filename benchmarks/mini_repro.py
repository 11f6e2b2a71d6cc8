"""The paper's main table in miniature, offline on CPU: does focal alignment beat DPO?

One seeded command, resumable by stage: each stage writes its outputs into RUN_DIR and is skipped when its
`done.json` is there (delete a stage's folder to redo it and everything after it).

  1. tasks     RUN_DIR/tasks: small Python tasks made by benchmarks/mini_tasks.py (pretrain / train /
               validation / heldout, held-out templates too), as problems JSONL and eval benchmark JSONL.
  2. pretrain  RUN_DIR/base: a Qwen2-shaped model of a few million parameters, random-initialised by
               `focal_dpo.tiny.write_tiny_model` with the project's 4,096-token tokenizer, then trained with a
               plain PyTorch loop on the pretrain split's reference solutions, in the exact prompt texts that
               `codeflow build --llm transformers` and `focal-dpo eval --chat` send (loss on the answer only).
  3. build     RUN_DIR/build/{transformers,simulate}: `codeflow build` on the train split, once with the
               pretrained model itself (sampling, up to 5 refinements) and once with `--llm simulate`;
               `codeflow stats` of each; RUN_DIR/build/pairs.jsonl joins both sources' pairs.
  4. grid      RUN_DIR/grid: each arm trained at the first seed with each learning rate of --lrs (into
               RUN_DIR/arms), scored with `focal-dpo eval` on the validation split; the best rate per arm is
               kept (the held-out split is never looked at to choose).
  5. train     RUN_DIR/arms/ARM_lrLR_sSEED: `focal-dpo train` of every arm from the same base, equal steps,
               at the chosen rate, one run per seed (the first seed's run is the grid's).
  6. eval      RUN_DIR/eval: `focal-dpo eval` (greedy pass@1) of the base and every arm x seed on the
               held-out split, `focal-dpo eval --compare` of DPO against Target-DPO, and the table
               (RUN_DIR/table.md, RUN_DIR/results.json) with a bootstrap 95% CI over problems.

    python benchmarks/mini_repro.py runs/mini             # the full run (about an hour on 2 shared cores)
    python benchmarks/mini_repro.py runs/smoke --smoke    # every stage at tiny sizes, a few minutes
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks import mini_tasks  # noqa: E402

# name -> `focal-dpo train` flags that make the arm (beta, steps, rate and seed are common)
ARMS: dict[str, list[str]] = {
    "SFT": ["--loss", "sft"],
    "DPO": ["--loss", "sigmoid", "--mask", "full", "--rpo-alpha", "0"],
    "Target-DPO": ["--loss", "sigmoid", "--mask", "target", "--rpo-alpha", "0"],
    "Target-RPO": ["--loss", "sigmoid", "--mask", "target", "--rpo-alpha", "1"],
}


@dataclass
class Settings:
    """Everything that decides the run's numbers; saved as RUN_DIR/settings.json and checked on resume."""

    seed: int = 0
    sizes: dict[str, int] = field(
        default_factory=lambda: {"pretrain": 6000, "train": 500, "validation": 150, "heldout": 200}
    )
    hidden_size: int = 128
    layers: int = 2
    heads: int = 4
    pretrain_steps: int = 480
    pretrain_batch: int = 16
    pretrain_lr: float = 3e-3
    # shares of pretraining batches in each of PROMPT_FORMATS: eval's, the build's first and refinement prompts
    format_shares: list[float] = field(default_factory=lambda: [0.6, 0.25, 0.15])
    temperature: float = 0.8
    max_iterations: int = 5
    max_new_tokens: int = 64
    build_limit: int = 200  # problems of the train split the transformers build gets (0: all)
    steps: int = 60
    batch_size: int = 8
    beta: float = 0.1
    lrs: list[float] = field(default_factory=lambda: [1e-4, 4e-4])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    workers: int = 2
    bootstrap: int = 2000


SMOKE = dict(
    sizes={"pretrain": 200, "train": 24, "validation": 8, "heldout": 8},
    hidden_size=32, layers=1, heads=2, pretrain_steps=4, pretrain_batch=8, max_iterations=1,
    max_new_tokens=24, build_limit=4, steps=2, batch_size=4, lrs=[1e-4], seeds=[0], bootstrap=200,
)  # fmt: skip


class StageError(RuntimeError):
    """A stage's command failed; the message names the command and its log."""


# ---- helpers


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def done(folder: Path) -> dict | None:
    marker = folder / "done.json"
    return json.loads(marker.read_text()) if marker.is_file() else None


def mark_done(folder: Path, info: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "done.json.tmp"
    tmp.write_text(json.dumps(info, indent=1) + "\n")
    tmp.replace(folder / "done.json")


def toolkit(program: str, args: list[str], log_file: Path, ok_codes: tuple[int, ...] = (0,)) -> int:
    """Run `codeflow ...` or `focal-dpo ...` from this checkout; its output goes to `log_file`."""
    module = {"codeflow": "codeflow.cli", "focal-dpo": "focal_dpo.cli"}[program]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("a") as out:
        out.write(f"$ {program} {' '.join(args)}\n")
        out.flush()
        rc = subprocess.run([sys.executable, "-m", module, *args], stdout=out, stderr=subprocess.STDOUT,
                            env=env, cwd=REPO).returncode  # fmt: skip
    if rc not in ok_codes:
        tail = "\n".join(log_file.read_text().splitlines()[-15:])
        raise StageError(f"{program} {args[0]} exited {rc} (log: {log_file})\n{tail}")
    return rc


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# ---- stage 1: tasks


def stage_tasks(run: Path, s: Settings) -> dict:
    folder = run / "tasks"
    if info := done(folder):
        return info
    splits = mini_tasks.make_splits(s.seed, s.sizes)
    mini_tasks.write_splits(folder, splits)
    info = {
        split: {
            "problems": len(rows),
            "templates": len({r["template"] for r in rows}),
            "kinds": {k: sum(r["kind"] == k for r in rows) for k in sorted({r["kind"] for r in rows})},
        }
        for split, rows in splits.items()
    }
    mark_done(folder, info)
    return info


# ---- stage 2: pretraining


PROMPT_FORMATS = ("eval", "build", "refine")
_LITERAL = re.compile(r"(?<![\w.])\d+|'[^']*'")


def wrong_version(problem: dict, rng: random.Random) -> tuple[str, str] | None:
    """The reference solution with one constant changed, and the first test it fails; None if it passes."""
    code = problem["solution"]
    body_start = code.index("\n")  # constants of the body only, not of the signature
    literals = list(_LITERAL.finditer(code, body_start))
    if not literals:
        return None
    hit = rng.choice(literals)
    if hit.group().startswith("'"):
        other = "'" + "".join(rng.choice("abcdefghxyz") for _ in range(rng.randint(1, 3))) + "'"
    else:
        other = str(rng.randint(0, 40))
    wrong = code[: hit.start()] + other + code[hit.end() :]
    namespace: dict = {}
    exec(wrong, namespace)  # our own template's code with one constant changed
    for test in problem["tests"].splitlines():
        try:
            exec(test, namespace)
        except AssertionError:
            return wrong, test
        except Exception:  # noqa: BLE001 - a crash is a different feedback; this version is not used
            return None
    return None


def pretraining_texts(
    problem: dict, tokenizer, prompt_format: str, rng: random.Random
) -> tuple[str, str] | None:
    """(prompt, answer) exactly as the toolkit sends and reads them, or None (no wrong version to fix).

    eval: `focal-dpo eval --chat` and `focal-dpo train --chat-template` render the instruction as one user
    message. build: `codeflow build`'s system message and generation prompt (tests shown). refine: its
    refinement prompt for a wrong version (one constant changed) with the feedback an AssertionError gets.
    The answer is the pairs' exported form, the code in one python fence; the trainer appends EOS.
    """
    from codeflow.pipeline.problems import parse_problem
    from codeflow.pipeline.prompts import feedback_text, generation_messages, refinement_messages
    from focal_dpo.tokenize import render_prompt

    answer = f"```python\n{problem['solution']}```"
    if prompt_format == "eval":
        return render_prompt(tokenizer, problem["instruction"]), answer
    fields = ("id", "instruction", "tests", "test_style", "entry_point", "solution")
    parsed = parse_problem({k: problem[k] for k in fields})
    if prompt_format == "build":
        messages = generation_messages(parsed)
    else:
        found = wrong_version(problem, rng)
        if found is None:
            return None
        wrong, test = found
        line = problem["tests"].splitlines().index(test) + 1
        expression = test.removeprefix("assert ")
        traceback = (
            f'Traceback (most recent call last):\n  File "test_solution.py", line {line}, in <module>\n'
            f"    {test}\n    {' ' * 7}{'^' * len(expression)}\nAssertionError"
        )
        feedback = feedback_text("code", "failed", "AssertionError", test, test, traceback)
        messages = refinement_messages(parsed, wrong, problem["tests"], feedback)
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True), answer


def answer_loss(model, input_ids, attention, labels):
    """Mean next-token NLL over the answer tokens, with the LM head applied at those positions only.

    The answer is a fifth to a tenth of each row, and the 4,096-way head costs as much as the decoder layers
    of a model this small, so skipping it on the prompt positions more than halves a step.
    """
    import torch

    hidden = model.model(input_ids=input_ids, attention_mask=attention).last_hidden_state
    targets = labels[:, 1:]
    scored = targets != -100
    logits = model.lm_head(hidden[:, :-1][scored])
    return torch.nn.functional.cross_entropy(logits.float(), targets[scored])


def stage_pretrain(run: Path, s: Settings) -> dict:
    folder = run / "base"
    if info := done(folder):
        return info
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from focal_dpo.tiny import write_tiny_model

    started = time.perf_counter()
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    if folder.exists():  # an unfinished pretraining: start it again from the random weights
        for path in sorted(folder.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
    write_tiny_model(folder, "qwen2", s.hidden_size, s.layers, s.heads, seed=s.seed)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    params = sum(p.numel() for p in model.parameters())
    problems = read_jsonl(run / "tasks" / "pretrain.jsonl")
    eos = tokenizer.eos_token_id
    rng = random.Random(s.seed)
    examples: dict[str, list[tuple[list[int], list[int]]]] = {name: [] for name in PROMPT_FORMATS}
    for problem in problems:
        for prompt_format in PROMPT_FORMATS:
            texts = pretraining_texts(problem, tokenizer, prompt_format, rng)
            if texts is None:
                continue
            prompt_ids = tokenizer(texts[0], add_special_tokens=False)["input_ids"]
            answer_ids = tokenizer(texts[1], add_special_tokens=False)["input_ids"] + [eos]
            examples[prompt_format].append((prompt_ids, answer_ids))
    torch.manual_seed(s.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=s.pretrain_lr, weight_decay=0.01, betas=(0.9, 0.98))
    warmup = max(1, s.pretrain_steps // 20)

    def rate(step: int) -> float:  # linear warmup, cosine down to a tenth
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, s.pretrain_steps - warmup)
        return 0.1 + 0.45 * (1 + math.cos(math.pi * progress))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, rate)
    model.train()
    log_path = folder / "pretrain_log.jsonl"
    with log_path.open("w") as log_file:
        for step in range(s.pretrain_steps):
            # One prompt format per batch, so rows of similar length share it (less padding).
            prompt_format = rng.choices(PROMPT_FORMATS, weights=s.format_shares)[0]
            batch = rng.sample(examples[prompt_format], s.pretrain_batch)
            width = max(len(p) + len(a) for p, a in batch)
            input_ids = torch.full((len(batch), width), eos, dtype=torch.long)
            labels = torch.full((len(batch), width), -100, dtype=torch.long)
            attention = torch.zeros((len(batch), width), dtype=torch.long)
            for row, (prompt_ids, answer_ids) in enumerate(batch):
                ids = prompt_ids + answer_ids
                input_ids[row, : len(ids)] = torch.tensor(ids)
                labels[row, len(prompt_ids) : len(ids)] = torch.tensor(answer_ids)
                attention[row, : len(ids)] = 1
            loss = answer_loss(model, input_ids, attention, labels)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            if step % 25 == 0 or step == s.pretrain_steps - 1:
                elapsed = time.perf_counter() - started
                record = {"step": step + 1, "loss": round(loss.item(), 4), "elapsed_s": round(elapsed, 1)}
                log_file.write(json.dumps(record) + "\n")
                log_file.flush()
                if step in (0, 25) or (step + 1) % 200 == 0:
                    log(f"pretrain step {step + 1}/{s.pretrain_steps} loss {loss.item():.3f} "
                        f"({(step + 1) / elapsed:.2f} steps/s)")  # fmt: skip
    model.eval()
    model.save_pretrained(folder)
    info = {
        "parameters": params,
        "steps": s.pretrain_steps,
        "final_loss": round(loss.item(), 4),
        "seconds": round(time.perf_counter() - started, 1),
    }
    mark_done(folder, info)
    return info


# ---- stage 3: CodeFlow from the model itself, and from simulate


def stage_build(run: Path, s: Settings) -> dict:
    folder = run / "build"
    if info := done(folder):
        return info
    started = time.perf_counter()
    train = run / "tasks" / "train.jsonl"
    source = train
    if s.build_limit:
        source = folder / "train_subset.jsonl"
        folder.mkdir(parents=True, exist_ok=True)
        mini_tasks.write_jsonl(source, read_jsonl(train)[: s.build_limit])
    common = ["--max-iterations", str(s.max_iterations), "--seed", str(s.seed), "--workers", str(s.workers),
              "--no-progress", "--no-humaneval", "--tokenizer", str(run / "base")]  # fmt: skip
    runs = {
        "transformers": [str(source), "--llm", "transformers", "--model", str(run / "base"),
                         "--temperature", str(s.temperature), "--max-new-tokens", str(s.max_new_tokens)],
        "simulate": [str(train), "--llm", "simulate"],
    }  # fmt: skip
    info: dict = {}
    pairs: list[dict] = []
    for name, args in runs.items():
        out = folder / name
        began = time.perf_counter()
        toolkit("codeflow", ["build", *args, "--out", str(out), *common], folder / f"{name}.log")
        toolkit("codeflow", ["stats", str(out), "--no-timings"], out / "stats.txt")
        source_pairs = read_jsonl(out / "pairs.jsonl")
        pairs += source_pairs
        info[name] = {"pairs": len(source_pairs), "seconds": round(time.perf_counter() - began, 1)}
        log(f"build {name}: {len(source_pairs)} pairs in {info[name]['seconds']} s; stats in {out}/stats.txt")
    if not pairs:
        raise StageError("neither build made a pair; nothing to train on")
    random.Random(s.seed).shuffle(pairs)
    mini_tasks.write_jsonl(folder / "pairs.jsonl", pairs)
    info["pairs"] = len(pairs)
    info["seconds"] = round(time.perf_counter() - started, 1)
    mark_done(folder, info)
    return info


def stats_text(out: Path) -> str:
    """`codeflow stats` as saved, without the command line the log starts with."""
    return "\n".join(line for line in out.read_text().splitlines() if not line.startswith("$ "))


# ---- stages 4-6: training and evaluation


def run_name(arm: str, lr: float, seed: int) -> str:
    """One training run's folder name under RUN_DIR/arms (the grid's seed-0 runs are reused by stage 5)."""
    return f"{arm.lower().replace('-', '_')}_lr{lr:g}_s{seed}"


def train_arm(run: Path, s: Settings, arm: str, lr: float, seed: int) -> Path:
    """`focal-dpo train` of one arm; returns its final model (skipped when that is already saved)."""
    out = run / "arms" / run_name(arm, lr, seed)
    if (out / "final" / "config.json").is_file():
        return out / "final"
    args = ["train", "--model", str(run / "base"), "--data", str(run / "build" / "pairs.jsonl"),
            "--output", str(out), *ARMS[arm], "--beta", str(s.beta), "--learning-rate", str(lr),
            "--max-steps", str(s.steps), "--batch-size", str(s.batch_size), "--seed", str(seed),
            "--chat-template", "--no-progress", "--max-length", "512", "--warmup-ratio", "0.1"]  # fmt: skip
    if out.exists() and any(out.glob("checkpoint-*")):
        args.append("--resume")
    toolkit("focal-dpo", args, out.parent / f"{out.name}.log")
    return out / "final"


def evaluate(run: Path, s: Settings, model: Path, split: str, out: Path) -> dict:
    """`focal-dpo eval` (greedy, chat prompts) of `model` on a split's benchmark file; its summary.json."""
    summary = out / "summary.json"
    if not summary.is_file():
        args = ["eval", "--model", str(model), "--benchmark", str(run / "tasks" / f"{split}_bench.jsonl"),
                "--chat", "--max-new-tokens", str(s.max_new_tokens), "--batch-size", "32",
                "--workers", str(s.workers), "--no-progress", "--out", str(out)]  # fmt: skip
        toolkit("focal-dpo", args, out.parent / f"{out.name}.log")
    return json.loads(summary.read_text())


def stage_grid(run: Path, s: Settings) -> dict:
    folder = run / "grid"
    if info := done(folder):
        return info
    started = time.perf_counter()
    scores: dict[str, dict[str, float]] = {}
    for arm in ARMS:
        scores[arm] = {}
        for lr in s.lrs:
            if len(s.lrs) > 1:
                model = train_arm(run, s, arm, lr, s.seeds[0])
                summary = evaluate(run, s, model, "validation", folder / run_name(arm, lr, s.seeds[0]))
                scores[arm][f"{lr:g}"] = summary["pass_at_k"]["pass@1"]
            else:  # one rate: nothing to choose, so no training is spent on it
                scores[arm][f"{lr:g}"] = float("nan")
        log(f"grid {arm}: validation pass@1 " + ", ".join(f"lr {k} {v:.3f}" for k, v in scores[arm].items()))
    best = {arm: float(max(by_lr, key=lambda k: (by_lr[k], -float(k)))) for arm, by_lr in scores.items()}
    info = {"validation_pass1": scores, "chosen_lr": best, "seconds": round(time.perf_counter() - started, 1)}
    mark_done(folder, info)
    return info


def stage_train(run: Path, s: Settings, chosen_lr: dict[str, float]) -> dict:
    folder = run / "arms"
    if info := done(folder):
        return info
    started = time.perf_counter()
    for arm in ARMS:
        for seed in s.seeds:
            began = time.perf_counter()
            train_arm(run, s, arm, chosen_lr[arm], seed)
            log(f"train {arm} seed {seed}: {time.perf_counter() - began:.0f} s")
    info = {"seconds": round(time.perf_counter() - started, 1)}
    mark_done(folder, info)
    return info


def passed_by_problem(out: Path) -> dict[str, float]:
    """task_id -> fraction of its samples that passed (one greedy sample here)."""
    by_task: dict[str, list[bool]] = {}
    for row in read_jsonl(out / "results.jsonl"):
        by_task.setdefault(row["task_id"], []).append(row["status"] == "passed")
    return {task: sum(v) / len(v) for task, v in by_task.items()}


def bootstrap_ci(values: list[float], resamples: int, seed: int) -> tuple[float, float]:
    """95% percentile interval of the mean, resampling problems with replacement."""
    rng = random.Random(seed)
    n = len(values)
    means = sorted(sum(values[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples))
    return means[int(0.025 * resamples)], means[min(resamples - 1, int(0.975 * resamples))]


def stage_eval(run: Path, s: Settings, chosen_lr: dict[str, float]) -> dict:
    folder = run / "eval"
    if info := done(folder):
        return info
    started = time.perf_counter()
    runs: dict[str, list[tuple[int | None, Path]]] = {"base": [(None, folder / "base")]}
    evaluate(run, s, run / "base", "heldout", folder / "base")
    for arm in ARMS:
        runs[arm] = []
        for seed in s.seeds:
            name = run_name(arm, chosen_lr[arm], seed)
            evaluate(run, s, run / "arms" / name / "final", "heldout", folder / name)
            runs[arm].append((seed, folder / name))
        log(f"eval {arm}: done")
    tasks = [row["task_id"] for row in read_jsonl(run / "tasks" / "heldout_bench.jsonl")]
    rows = []
    per_problem: dict[str, list[float]] = {}
    for name, seeded in runs.items():
        passed = [passed_by_problem(out) for _, out in seeded]
        # A problem's score is its pass rate averaged over seeds; the CI resamples problems.
        scores = [sum(p.get(t, 0.0) for p in passed) / len(passed) for t in tasks]
        per_problem[name] = scores
        summaries = [json.loads((out / "summary.json").read_text()) for _, out in seeded]
        errors: dict[str, int] = {}
        for summary in summaries:
            for kind, count in summary["top_error_types"].items():
                errors[kind] = errors.get(kind, 0) + count
        low, high = bootstrap_ci(scores, s.bootstrap, s.seed)
        rows.append({
            "arm": name,
            "pass1_mean": sum(scores) / len(scores),
            "ci95": [low, high],
            "per_seed": {str(seed): summary["pass_at_k"]["pass@1"]
                         for (seed, _), summary in zip(seeded, summaries, strict=True)},
            "error_types": dict(sorted(errors.items(), key=lambda kv: -kv[1])),
        })  # fmt: skip
    delta = [t - d for t, d in zip(per_problem["Target-DPO"], per_problem["DPO"], strict=True)]
    compare = {
        "target_dpo_minus_dpo": sum(delta) / len(delta),
        "ci95": list(bootstrap_ci(delta, s.bootstrap, s.seed)),
    }
    compare_log = folder / "compare_dpo_vs_target_dpo.txt"
    if compare_log.exists():
        compare_log.unlink()
    first = {arm: folder / run_name(arm, chosen_lr[arm], s.seeds[0]) for arm in ("DPO", "Target-DPO")}
    toolkit("focal-dpo", ["eval", "--compare", str(first["DPO"]), str(first["Target-DPO"])], compare_log)
    info = {"heldout_problems": len(tasks), "rows": rows, "paired": compare,
            "seconds": round(time.perf_counter() - started, 1)}  # fmt: skip
    mark_done(folder, info)
    return info


def format_table(rows: list[dict], seeds: list[int]) -> str:
    header = ["arm", "held-out pass@1", "95% CI", *[f"seed {seed}" for seed in seeds]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        per_seed = [row["per_seed"].get(str(seed), row["per_seed"].get("None")) for seed in seeds]
        if row["arm"] == "base":  # one model, no training seed
            per_seed = [row["per_seed"]["None"]] + ["-"] * (len(seeds) - 1)
        cells = [row["arm"], f"{row['pass1_mean']:.3f}", f"[{row['ci95'][0]:.3f}, {row['ci95'][1]:.3f}]",
                 *[v if isinstance(v, str) else f"{v:.3f}" for v in per_seed]]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_errors(rows: list[dict]) -> str:
    lines = ["| arm | failing samples by error type (all seeds) |", "|---|---|"]
    for row in rows:
        kinds = ", ".join(f"{kind} {count}" for kind, count in row["error_types"].items()) or "-"
        lines.append(f"| {row['arm']} | {kinds} |")
    return "\n".join(lines)


# ---- the command


def load_settings(run: Path, s: Settings) -> Settings:
    """The run's saved settings must be those asked for now: a resume never mixes two configurations."""
    path = run / "settings.json"
    wanted = json.loads(json.dumps(asdict(s)))
    if path.is_file():
        saved = json.loads(path.read_text())
        changed = [k for k in wanted if saved.get(k) != wanted[k]]
        if changed:
            raise ValueError(
                f"{run} was started with other settings ({', '.join(changed)}); use a new RUN_DIR"
            )
    else:
        run.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(wanted, indent=1) + "\n")
    return s


def parse_args(argv: list[str] | None) -> tuple[Path, Settings]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, help="where every stage writes (resumed when it exists)")
    parser.add_argument("--smoke", action="store_true", help="every stage at tiny sizes (a few minutes)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the tasks, the base model and the build")
    parser.add_argument("--seeds", type=int, nargs="+", help="training seeds per arm (default: 0 1 2)")
    parser.add_argument("--lrs", type=float, nargs="+", help="learning rates tried on validation")
    parser.add_argument("--steps", type=int, help="optimizer steps of every arm (default: 60)")
    parser.add_argument("--pretrain-steps", type=int, help="steps of pretraining (default: 480)")
    args = parser.parse_args(argv)
    s = Settings(**SMOKE) if args.smoke else Settings()
    s.seed = args.seed
    for name in ("seeds", "lrs", "steps", "pretrain_steps"):
        if getattr(args, name) is not None:
            setattr(s, name, getattr(args, name))
    for name in ("steps", "pretrain_steps"):
        if getattr(s, name) < 1:
            parser.exit(2, f"mini_repro: --{name.replace('_', '-')} must be at least 1\n")
    if not s.seeds or len(set(s.seeds)) != len(s.seeds):
        parser.exit(2, "mini_repro: --seeds must be distinct\n")
    if any(lr <= 0 for lr in s.lrs):
        parser.exit(2, "mini_repro: --lrs must be positive\n")
    if args.run_dir.exists() and not args.run_dir.is_dir():
        parser.exit(2, f"mini_repro: {args.run_dir} is a file; give a directory\n")
    return args.run_dir, s


def main(argv: list[str] | None = None) -> int:
    run, s = parse_args(argv)
    try:
        load_settings(run, s)
    except ValueError as e:
        print(f"mini_repro: {e}", file=sys.stderr)
        return 2
    wall: dict[str, float] = {}
    started = time.perf_counter()
    try:
        for stage in ("tasks", "pretrain", "build", "grid", "train", "eval"):
            began = time.perf_counter()
            if stage == "tasks":
                info = stage_tasks(run, s)
                log("tasks: " + ", ".join(f"{k} {v['problems']} ({v['templates']} templates)"
                                          for k, v in info.items()))  # fmt: skip
            elif stage == "pretrain":
                info = stage_pretrain(run, s)
                log(f"pretrain: {info['parameters']:,} parameters, {info['steps']} steps, "
                    f"loss {info['final_loss']}, {info['seconds']} s")  # fmt: skip
            elif stage == "build":
                info = stage_build(run, s)
                for name in ("transformers", "simulate"):
                    print(
                        f"\n== codeflow stats ({name}) ==\n{stats_text(run / 'build' / name / 'stats.txt')}"
                    )
                log(f"build: {info['pairs']} pairs -> {run / 'build' / 'pairs.jsonl'}")
            elif stage == "grid":
                grid = stage_grid(run, s)
                log(f"grid: chosen learning rates {grid['chosen_lr']}")
            elif stage == "train":
                stage_train(run, s, grid["chosen_lr"])
            else:
                info = stage_eval(run, s, grid["chosen_lr"])
            wall[stage] = round(time.perf_counter() - began, 1)
    except StageError as e:
        print(f"mini_repro: {e}", file=sys.stderr)
        return 1
    table = format_table(info["rows"], s.seeds)
    errors = format_errors(info["rows"])
    paired = info["paired"]
    paired_line = (f"Target-DPO - DPO (paired over {info['heldout_problems']} held-out problems, seeds averaged): "
                   f"{paired['target_dpo_minus_dpo']:+.3f}, 95% CI [{paired['ci95'][0]:+.3f}, "
                   f"{paired['ci95'][1]:+.3f}]")  # fmt: skip
    (run / "table.md").write_text(f"{table}\n\n{errors}\n\n{paired_line}\n")
    results = {"settings": asdict(s), "rows": info["rows"], "paired": paired, "grid": grid,
               "stage_seconds_this_invocation": wall,
               "wall_s_this_invocation": round(time.perf_counter() - started, 1)}  # fmt: skip
    (run / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    print(f"\n{table}\n\n{errors}\n\n{paired_line}\n")
    print(stats_text(run / "eval" / "compare_dpo_vs_target_dpo.txt"))
    log(f"stage wall times (s, this invocation): {wall}; table: {run / 'table.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
