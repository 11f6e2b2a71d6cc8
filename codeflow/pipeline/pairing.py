"""Pairing: which failing version is the rejected side, and the exported record of a pair."""

from __future__ import annotations

import json
import random

from codeflow.pipeline import filters
from codeflow.pipeline.export import FENCE_OPEN
from codeflow.pipeline.problems import Problem


def pick_negative(failing: list[dict], strategy: str, seed: int, problem_id: str) -> dict:
    """The rejected version among a problem's failing attempts: first, last, or one at random (seeded per
    problem, so the choice does not depend on which other problems are in the run)."""
    if strategy == "first":
        return failing[0]
    if strategy == "last":
        return failing[-1]
    return random.Random(f"negative:{seed}:{problem_id}").choice(failing)


def pair_record(problem: Problem, cand: filters.Candidate, chosen: dict, rejected: dict, meta: dict) -> dict:
    shift = len(FENCE_OPEN)
    return {
        "prompt": problem.instruction,
        "chosen": cand.chosen,
        "rejected": cand.rejected,
        "chosen_spans": [[s + shift, e + shift] for s, e in cand.diff.after_spans],
        "rejected_spans": [[s + shift, e + shift] for s, e in cand.diff.before_spans],
        "problem_id": problem.id,
        "chosen_iteration": chosen["iteration"],
        "rejected_iteration": rejected["iteration"],
        "rejected_status": rejected["status"],
        "rejected_error_type": rejected["error_type"],
        "tests": json.loads(chosen["tests"]),
        "test_style": problem.test_style,
        "meta": meta,
    }
