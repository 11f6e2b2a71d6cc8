"""A reference run for `focal-dpo eval --compare` (docs/eval.md): the first 8 HumanEval problems scored through
the Python API, answering the even-numbered ones with their canonical solution and the others with `return None`.

    python examples/eval_half_canonical.py runs/eval/half
"""

import sys

from focal_dpo.eval.problems import load_benchmark
from focal_dpo.eval.runner import EvalSettings, evaluate

name, problems = load_benchmark("humaneval")
problems = problems[:8]
position = {problem.prompt: (i, problem) for i, problem in enumerate(problems)}


def generate(prompts: list[str]) -> list[str]:
    answers = []
    for i, problem in map(position.get, prompts):
        answers.append(problem.canonical_solution if i % 2 == 0 else "    return None\n")
    return answers


summary = evaluate(
    problems, generate, sys.argv[1], EvalSettings(benchmark=name, model="half-canonical"), progress=False
)
print(f"pass@1 {summary['pass_at_k']['pass@1']:.4f} -> {sys.argv[1]}")
