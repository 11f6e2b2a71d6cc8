"""`codeflow build` and `focal-dpo eval --backend openai` against a real server: `transformers serve` on the tiny
random model (CPU). Build and eval complete; a wrong model name is a non-zero exit naming the server's message;
a server killed mid-build and restarted within the retry budget loses no call, and the request counts add up.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.pipeline_helpers import run_sql
from tests.transformers_server import TransformersServer, available

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.slow, pytest.mark.skipif(available() is not None, reason=str(available()))]
SUBSET = ["running_max", "merge_intervals", "caesar_shift", "stdio_sum_pairs"]


def problems_file(tmp_path: Path, ids: list[str]) -> Path:
    rows = [json.loads(line) for line in (ROOT / "examples/problems.jsonl").read_text().splitlines()]
    path = tmp_path / "problems.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows if r["id"] in ids))
    return path


def cli(*argv: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *argv], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def build_cmd(problems: Path, out: Path, server: TransformersServer, model: str | None = None) -> list[str]:
    return [
        "-m", "codeflow.cli", "build", str(problems), "--out", str(out), "--llm", "openai",
        "--base-url", server.base_url, "--model", model or server.model, "--max-new-tokens", "24",
        "--max-iterations", "1", "--no-progress", "--no-humaneval", "--concurrency", "4",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    with TransformersServer(tiny_model_dir, log=tmp_path_factory.mktemp("serve") / "serve.log") as running:
        yield running


def test_build_and_eval_complete_against_transformers_serve(server, tmp_path):
    problems = problems_file(tmp_path, SUBSET)
    out = tmp_path / "run"
    done = cli(*build_cmd(problems, out, server))
    assert done.returncode == 0, done.stderr[-3000:]
    calls = run_sql(
        out, "SELECT COUNT(*) AS n, SUM(requests) AS r, SUM(error_kind IS NOT NULL) AS e FROM llm_calls"
    )[0]
    # a random model writes no passing code: every problem asks once and refines once
    assert (calls["n"], calls["r"], calls["e"]) == (2 * len(SUBSET), 2 * len(SUBSET), 0)
    outcomes = {r["status"] for r in run_sql(out, "SELECT status FROM outcomes")}
    assert outcomes == {"exhausted"}
    assert f"({calls['n']} model calls this run, {calls['r']} HTTP requests)" in done.stdout

    eval_out = tmp_path / "eval"
    argv = ["-m", "focal_dpo.cli", "eval", "--backend", "openai", "--base-url", server.base_url]
    argv += [
        "--model",
        server.model,
        "--limit",
        "2",
        "--max-new-tokens",
        "8",
        "--out",
        str(eval_out),
        "--no-progress",
    ]
    done = cli(*argv)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((eval_out / "summary.json").read_text())
    assert summary["num_samples"] == 2 and summary["pass_at_k"] == {"pass@1": 0.0}


def test_a_wrong_model_name_fails_naming_the_servers_message_and_the_fixed_rerun_completes(server, tmp_path):
    problems = problems_file(tmp_path, SUBSET[:2])
    out = tmp_path / "run"
    done = cli(*build_cmd(problems, out, server, model="no-such-model"))
    assert done.returncode == 1
    assert "2 problem(s) ended in llm_error" in done.stderr
    assert re.search(
        r"http_4xx: 2 problem\(s\), e\.g\. \w+: .*HTTP 400: .*Server is pinned to", done.stderr
    ), done.stderr
    assert "rerun the same command" in done.stderr

    eval_out = tmp_path / "eval"
    argv = [
        "-m",
        "focal_dpo.cli",
        "eval",
        "--backend",
        "openai",
        "--base-url",
        server.base_url,
        "--limit",
        "1",
    ]
    argv += ["--max-new-tokens", "4", "--out", str(eval_out), "--no-progress"]
    wrong = cli(*argv, "--model", "no-such-model")
    err = wrong.stderr.strip().splitlines()
    assert wrong.returncode == 1 and len(err) == 1 and "Server is pinned to" in err[0], wrong.stderr
    fixed = cli(*argv, "--model", server.model)  # the same --out: the failed start does not block it
    assert fixed.returncode == 0, fixed.stderr[-2000:]


def test_a_server_killed_mid_build_and_restarted_loses_no_call(tiny_model_dir, tmp_path):
    """SIGKILL the server once the build has stored some answers, start it again on the same port: the build
    waits for it (--retry-connect), completes with every call answered, and the requests it counts add up."""
    ids = ["running_max", "chunk_list", "roman_numerals", "merge_intervals"]
    problems = problems_file(tmp_path, ids)
    out = tmp_path / "run"
    with TransformersServer(tiny_model_dir, log=tmp_path / "serve.log") as server:
        cmd = build_cmd(problems, out, server)
        cmd[cmd.index("--max-iterations") + 1] = "2"
        cmd[cmd.index("--concurrency") + 1] = "2"
        cmd += ["--retry-connect", "240"]
        build = subprocess.Popen(
            [sys.executable, *cmd], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            deadline = time.monotonic() + 300
            while _answered(out) < 2 and build.poll() is None and time.monotonic() < deadline:
                time.sleep(0.2)
            assert build.poll() is None, "the build ended before the server could be killed"
            server.kill()
            time.sleep(1.0)  # requests in the meantime are refused: the build keeps retrying them
            server.start()
            stdout, stderr = build.communicate(timeout=600)
        finally:
            if build.poll() is None:
                build.send_signal(signal.SIGKILL)
                build.wait()
    assert build.returncode == 0, stderr[-3000:]
    rows = run_sql(
        out, "SELECT COUNT(*) AS n, SUM(requests) AS r, SUM(error_kind IS NOT NULL) AS e FROM llm_calls"
    )[0]
    assert rows["e"] == 0
    assert rows["n"] == len(ids) * 3  # no lost call: every problem asked, then refined twice
    assert rows["r"] > rows["n"]  # the calls caught by the restart took more than one request
    assert f"({rows['n']} model calls this run, {rows['r']} HTTP requests)" in stdout
    assert {r["status"] for r in run_sql(out, "SELECT status FROM outcomes")} == {"exhausted"}


def _answered(run: Path) -> int:
    try:
        return run_sql(run, "SELECT COUNT(*) AS n FROM llm_calls WHERE text IS NOT NULL")[0]["n"]
    except Exception:  # noqa: BLE001 - the database is not there yet
        return 0
