"""`codeflow build` end to end with the simulate backend and the real sandbox, then `stats` and `show`."""

from __future__ import annotations

import json
import shutil

import pytest

from codeflow.cli import main as codeflow_main
from codeflow.pipeline.build import BuildConfig, BuildError, build
from codeflow.pipeline.problems import load_problems
from tests.pipeline_helpers import run_sql

EXAMPLES = "examples/problems.jsonl"
PAIR_FIELDS = {
    "prompt",
    "chosen",
    "rejected",
    "chosen_spans",
    "rejected_spans",
    "problem_id",
    "chosen_iteration",
    "rejected_iteration",
    "rejected_status",
    "rejected_error_type",
    "tests",
    "test_style",
    "meta",
}


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    result = build(BuildConfig(problems=EXAMPLES, out=str(out), progress=False))
    return out, result


def _pairs(out):
    return [json.loads(line) for line in (out / "pairs.jsonl").read_text().splitlines()]


def test_simulate_build_on_shipped_examples_exports_well_formed_pairs(demo_run):
    out, result = demo_run
    pairs = _pairs(out)
    assert len(pairs) == result.pairs > 10
    problems = {p.id: p for p in load_problems(EXAMPLES).problems}
    assert {p["test_style"] for p in pairs} == {"script", "unittest", "stdio"}
    for pair in pairs:
        assert set(pair) == PAIR_FIELDS
        assert pair["meta"]["backend"] == "simulate" and pair["meta"]["seed"] == 0
        assert pair["prompt"] == problems[pair["problem_id"]].instruction
        assert pair["rejected_iteration"] < pair["chosen_iteration"]
        assert pair["rejected_status"] != "passed"
        assert pair["chosen"].startswith("```python\n") and pair["chosen"].endswith("```")
        assert pair["chosen_spans"] or pair["rejected_spans"]
        for text, spans in (
            (pair["chosen"], pair["chosen_spans"]),
            (pair["rejected"], pair["rejected_spans"]),
        ):
            assert all(10 <= s < e <= len(text) - 3 for s, e in spans)  # inside the fence
            assert spans == sorted(spans)
        # the chosen side is the attempt that passed in the sandbox, the rejected one one that did not
        rows = {
            r["iteration"]: r
            for r in run_sql(
                out,
                "SELECT iteration, status, code FROM attempts WHERE problem_id = ?",
                (pair["problem_id"],),
            )
        }
        assert rows[pair["chosen_iteration"]]["status"] == "passed"
        assert pair["chosen"] == "```python\n" + rows[pair["chosen_iteration"]]["code"] + "```"
        assert rows[pair["rejected_iteration"]]["status"] == pair["rejected_status"]
    outcomes = {r["problem_id"]: r for r in run_sql(out, "SELECT * FROM outcomes")}
    skipped = [pid for pid, o in outcomes.items() if o["status"] == "skipped"]
    assert sorted(skipped) == sorted(pid for pid, p in problems.items() if not p.tests)
    assert all("simulate backend needs" in outcomes[pid]["reason"] for pid in skipped)


def test_exported_pairs_load_with_datasets(demo_run):
    from datasets import load_dataset

    out, result = demo_run
    ds = load_dataset("json", data_files=str(out / "pairs.jsonl"), split="train")
    assert len(ds) == result.pairs
    assert {"prompt", "chosen", "rejected"} <= set(ds.column_names)


def test_rerun_resumes_without_resending_requests_or_duplicating_pairs(demo_run, tmp_path):
    out, result = demo_run
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    before = (copy / "pairs.jsonl").read_bytes()
    again = build(BuildConfig(problems=EXAMPLES, out=str(copy), progress=False))
    assert again.calls == 0
    assert (copy / "pairs.jsonl").read_bytes() == before
    assert result.calls > 0


def test_changed_generation_settings_refuse_to_resume(demo_run, tmp_path):
    out, _ = demo_run
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    with pytest.raises(BuildError, match=r"seed: 0 -> 1"):
        build(BuildConfig(problems=EXAMPLES, out=str(copy), seed=1, progress=False))


def test_stats_json_matches_the_exported_pairs(demo_run, capsys):
    out, result = demo_run
    assert codeflow_main(["stats", str(out), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["pairs"] == result.pairs
    assert stats["funnel"][-1]["count"] == result.pairs
    rates = stats["pass_rate_by_iteration"]
    assert len(rates) == 6 and rates == sorted(rates) and rates[-1] == 1.0
    assert sum(stats["rejected_status"].values()) == result.pairs
    assert stats["llm"]["generate"]["calls"] == stats["problems"] - stats["outcomes"].get("skipped", 0)
    assert stats["executions"]["count"] > 0
    assert stats["outcome_reasons"] == [
        {
            "status": "skipped",
            "reason": "the simulate backend needs a reference solution and tests",
            "problems": 2,
        }
    ]


def test_stats_text_and_show_print_funnel_and_highlighted_pair(demo_run, capsys):
    out, _ = demo_run
    assert codeflow_main(["stats", str(out)]) == 0
    text = capsys.readouterr().out
    assert "pass rate by iteration" in text and "filter funnel" in text
    assert codeflow_main(["show", str(out), "--pair", "0", "--color", "never"]) == 0
    shown = capsys.readouterr().out
    pair = _pairs(out)[0]
    assert pair["problem_id"] in shown and "<- rejected" in shown and "<- chosen" in shown
    assert "{+" in shown or "[-" in shown
    assert codeflow_main(["show", str(out), "--pair", "999"]) == 2
    assert "--pair must be" in capsys.readouterr().err


def test_bad_problem_file_is_reported_and_strict_stops(tmp_path, capsys):
    problems = tmp_path / "p.jsonl"
    problems.write_text('{"id": "x"}\n')
    assert codeflow_main(["build", str(problems), "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "p.jsonl:1: missing field 'instruction'" in err and "no valid problems" in err
    assert codeflow_main(["build", str(problems), "--out", str(tmp_path / "run"), "--strict"]) == 2
    assert "p.jsonl:1: missing field 'instruction'" in capsys.readouterr().err


def test_judge_requests_are_cached_across_reruns(demo_run, tmp_path):
    out, result = demo_run
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    judged = build(BuildConfig(problems=EXAMPLES, out=str(copy), judge=True, progress=False))
    assert judged.calls == result.pairs  # one judge call per pair that passed the static filters
    assert judged.pairs == result.pairs  # simulate's judge calls every AST change functional
    again = build(BuildConfig(problems=EXAMPLES, out=str(copy), judge=True, progress=False))
    assert again.calls == 0


def test_filters_and_decontamination_rerun_on_a_finished_build_and_the_funnel_adds_up(demo_run, tmp_path):
    from codeflow.diff import diff_code
    from codeflow.pipeline.filters import rejected_diff_lines
    from codeflow.pipeline.stats import collect

    out, result = demo_run
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    fence = len("```python\n")
    d_minus = {
        p["problem_id"]: rejected_diff_lines(diff_code(p["rejected"][fence:-3], p["chosen"][fence:-3]))
        for p in _pairs(out)
    }
    assert any(n > 1 for n in d_minus.values()) and any(n <= 1 for n in d_minus.values())
    leaked_id = next(pid for pid, n in d_minus.items() if n <= 1)
    leaked = next(p for p in load_problems(EXAMPLES).problems if p.id == leaked_id)
    bench = tmp_path / "leaky_bench.jsonl"
    bench.write_text(json.dumps({"question": leaked.instruction}) + "\n")

    rerun = build(
        BuildConfig(problems=EXAMPLES, out=str(copy), decontam=[str(bench)], max_diff_lines=1, progress=False)
    )
    assert rerun.calls == 0  # only the later stages ran again
    verdicts = {r["problem_id"]: (r["stage"], r["reason"]) for r in run_sql(copy, "SELECT * FROM verdicts")}
    for pid, n in d_minus.items():
        stage, reason = verdicts[pid]
        if n > 1:
            assert stage == "diff_too_long"
        elif pid == leaked_id:
            assert stage == "contaminated" and reason.startswith("leaky_bench: ")
        else:
            assert stage == "kept"

    stats = collect(copy)
    assert stats["contaminated_by_benchmark"] == {"leaky_bench": 1}
    funnel = stats["funnel"]
    for before, after in zip(funnel, funnel[1:], strict=False):
        assert before["count"] - sum(after["dropped"].values()) == after["count"]
    assert funnel[0]["count"] == result.pairs and funnel[-1]["count"] == rerun.pairs == stats["pairs"]
    assert len(_pairs(copy)) == rerun.pairs == sum(1 for n in d_minus.values() if n <= 1) - 1


class _SandboxThatFailsEverything:
    def run_many(self, jobs, progress=False):
        from sandbox import Result

        return [Result(status="error", error_type="EarlyExit", message="exited with code 71") for _ in jobs]


def test_a_sandbox_that_cannot_run_code_stops_the_build_before_any_request(tmp_path):
    from codeflow.pipeline.execute import Executor, SandboxCheckError

    config = BuildConfig(problems=EXAMPLES, out=str(tmp_path / "run"), progress=False)
    with pytest.raises(SandboxCheckError, match=r"a script job that should pass came back error \(EarlyExit"):
        build(config, executor=Executor(sandbox=_SandboxThatFailsEverything()))
    assert run_sql(tmp_path / "run", "SELECT COUNT(*) AS n FROM llm_calls")[0]["n"] == 0
