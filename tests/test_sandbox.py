"""Behaviour of the sandbox API: styles, statuses, results, concurrency, CLI and the no-bwrap fallback."""

from __future__ import annotations

import hashlib
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from sandbox import Job, Limits, Result, Sandbox, runner
from sandbox import pool as sandbox_pool
from sandbox.testcode import unittest_test_ids
from sandbox.verdict import decide_in_process, normalise_output, parse_records
from tests.sandbox_cases.helpers import (
    FAST,
    HONEST_CODE,
    HONEST_TESTS,
    quiet_sandbox,
    sandbox_processes,
    sandbox_processes_after_exit,
)


@pytest.fixture(scope="module")
def sb():
    with quiet_sandbox() as box:
        yield box


def test_passing_script_counts_executed_asserts(sb):
    r = sb.run(HONEST_CODE, HONEST_TESTS)
    assert r.status == "passed" and r.passed
    assert r.tests_run == 2 and r.tests_failed == 0
    assert r.wall_ms > 0 and r.cpu_ms > 0


def test_failing_assert_names_the_failing_line(sb):
    r = sb.run("def add(a, b):\n    return a - b\n", HONEST_TESTS)
    assert r.status == "failed"
    assert r.error_type == "AssertionError"
    assert r.failing_test == "assert add(1, 2) == 3"
    assert r.tests_failed == 1


def test_humaneval_style_check_function_counts_inner_asserts(sb):
    tests = "def check(candidate):\n    for i in range(5):\n        assert candidate(i, 1) == i + 1\n\ncheck(add)\n"
    r = sb.run(HONEST_CODE, tests)
    assert r.status == "passed" and r.tests_run == 5


def test_tests_that_check_nothing_do_not_pass(sb):
    tests = "def check(candidate):\n    assert candidate(1, 2) == 3\n"  # the check(add) line is missing
    r = sb.run(HONEST_CODE, tests)
    assert r.status == "error" and r.error_type == "NoTests"


def test_runtime_error_in_code_is_error_with_trimmed_traceback(sb):
    r = sb.run("def f():\n    return undefined_name\nf()\n", "assert True")
    assert r.status == "error" and r.error_type == "NameError"
    assert "undefined_name" in r.message
    assert 'File "solution.py", line 2, in f' in r.traceback
    assert "/tmp/run-" not in r.traceback and "runner.py" not in r.traceback


def test_traceback_is_capped_for_deep_recursion(sb):
    r = sb.run("def f(n):\n    return f(n + 1)\nf(0)\n", "assert True")
    assert r.status == "error" and r.error_type == "RecursionError"
    assert len(r.traceback) <= 2100 and "RecursionError" in r.traceback


def test_syntax_error_in_code(sb):
    r = sb.run("def f(:\n    pass\n", "assert True")
    assert r.status == "syntax_error" and r.error_type == "SyntaxError"


def test_syntax_error_in_tests_is_error_not_syntax_error(sb):
    r = sb.run(HONEST_CODE, "assert add(1, 2) ==\n")
    assert r.status == "error" and "tests do not compile" in r.message


def test_memory_error_is_memory_limit(sb):
    r = sb.run("x = bytearray(4 * 1024 ** 3)\n", "assert True")
    assert r.status == "memory_limit" and r.error_type == "MemoryError"


def test_code_defined_classes_without_custom_comparison_compare_normally(sb):
    code = "class Box(list):\n    pass\n\ndef boxed(n):\n    return Box(range(n))\n"
    assert sb.run(code, "assert boxed(3) == [0, 1, 2]").status == "passed"


def test_unittest_style_passes_and_counts_tests(sb):
    tests = (
        "import unittest\nfrom solution import add\n\n"
        "class TestAdd(unittest.TestCase):\n"
        "    def test_small(self):\n        self.assertEqual(add(1, 2), 3)\n"
        "    def test_negative(self):\n        self.assertEqual(add(-1, -1), -2)\n"
    )
    r = sb.run(HONEST_CODE, tests, style="unittest")
    assert r.status == "passed" and r.tests_run == 2


def test_unittest_style_reports_failing_test_by_name(sb):
    tests = (
        "import unittest\nimport solution\n\n"
        "class TestAdd(unittest.TestCase):\n"
        "    def test_ok(self):\n        self.assertEqual(solution.add(1, 2), 3)\n"
        "    def test_wrong(self):\n        self.assertEqual(solution.add(2, 2), 5)\n"
    )
    r = sb.run(HONEST_CODE, tests, style="unittest")
    assert r.status == "failed"
    assert r.failing_test == "TestAdd.test_wrong"
    assert r.tests_run == 2 and r.tests_failed == 1
    assert "4 != 5" in r.message
    assert 'File "test_solution.py", line 8, in test_wrong' in r.traceback
    assert "unittest/case.py" not in r.traceback


def test_unittest_tests_may_mock_builtins(sb):
    code = "def ask():\n    return int(input()) * 2\n"
    tests = (
        "import unittest\nfrom unittest.mock import patch\nfrom solution import ask\n\n"
        "class T(unittest.TestCase):\n"
        "    @patch('builtins.input', return_value='21')\n"
        "    def test_ask(self, _):\n        self.assertEqual(ask(), 42)\n"
    )
    r = sb.run(code, tests, style="unittest")
    assert r.status == "passed", (r.status, r.message)


def test_unittest_custom_module_name(sb):
    tests = "import unittest\nfrom mysol import add\nclass T(unittest.TestCase):\n    def test_a(self):\n        assert add(1, 1) == 2\n"
    r = sb.run(HONEST_CODE, tests, style="unittest", module_name="mysol")
    assert r.status == "passed" and r.tests_run == 1


def test_unittest_ids_follow_base_classes_in_the_module():
    source = (
        "import unittest\nclass Mixin:\n    def test_shared(self): pass\n"
        "class Base(unittest.TestCase):\n    def test_base(self): pass\n    def helper(self): pass\n"
        "class Child(Base, Mixin):\n    def test_child(self): pass\n"
    )
    assert unittest_test_ids(source) == {
        "Base.test_base",
        "Child.test_base",
        "Child.test_child",
        "Child.test_shared",
    }


def test_stdio_style_ignores_trailing_whitespace(sb):
    code = "n = int(input())\nprint(n * 2, '  ')\nprint()\n"
    assert sb.run(code, None, style="stdio", stdin="21\n", expected_stdout="42").status == "passed"
    wrong = sb.run(code, None, style="stdio", stdin="20\n", expected_stdout="42\n")
    assert wrong.status == "failed" and wrong.error_type == "WrongAnswer"
    assert "expected '42', got '40'" in wrong.message


def test_stdio_style_allows_sys_exit_zero_after_output(sb):
    code = "import sys\nprint('ok')\nsys.exit(0)\n"
    assert sb.run(code, style="stdio", expected_stdout="ok").status == "passed"


def test_stdio_programs_may_patch_builtins_for_speed(sb):
    code = "import builtins, sys\nbuiltins.input = sys.stdin.readline\nprint(int(input()) + 1)\n"
    assert sb.run(code, style="stdio", stdin="41\n", expected_stdout="42").status == "passed"


def test_normalise_output_strips_line_ends_and_trailing_blank_lines():
    assert normalise_output("a  \nb\t\n\n\n") == "a\nb"


def test_os_write_to_fd_1_is_captured_and_capped(sb):
    code = "import os\nos.write(1, b'direct\\n')\nos.write(2, b'e' * 3000)\nprint('buffered')\n"
    r = sb.run(code, "assert True")
    assert r.status == "passed"
    assert "direct" in r.stdout and "buffered" in r.stdout
    assert r.stderr == "e" * 3000 and not r.stderr_truncated


def test_output_over_the_cap_is_output_limit_and_truncated(sb):
    r = sb.run("print('x' * 10000)\n", "assert True")
    assert r.status == "output_limit"
    assert r.stdout_truncated and len(r.stdout) == FAST.output_bytes


def test_per_job_limits_override_the_sandbox_default(sb):
    r = sb.run("import time\ntime.sleep(30)\n", "assert True", limits=Limits(timeout_s=0.5))
    assert r.status == "timeout"


def test_result_round_trips_through_json(sb):
    r = sb.run("def add(a, b):\n    return a - b\n", HONEST_TESTS)
    again = Result.from_dict(json.loads(json.dumps(r.to_dict())))
    assert again == r


def test_result_from_dict_rejects_unknown_fields():
    with pytest.raises(ValueError, match="unknown Result fields"):
        Result.from_dict({"status": "passed", "bogus": 1})


def test_job_rejects_unknown_style():
    with pytest.raises(ValueError, match="unknown test style 'nose'"):
        Job("x = 1", "assert True", style="nose")


def test_run_many_keeps_input_order_through_crashes_and_hangs(sb):
    jobs = [
        Job(HONEST_CODE, HONEST_TESTS),
        Job("while True:\n    pass\n", "assert True", limits=Limits(timeout_s=0.5)),
        Job("import ctypes\nctypes.string_at(0)\n", "assert True"),
        Job("def add(a, b):\n    return 0\n", HONEST_TESTS),
        Job("import os\nos._exit(3)\n", "assert True"),
        Job(HONEST_CODE, HONEST_TESTS),
    ]
    statuses = [r.status for r in sb.run_many(jobs)]
    assert statuses == ["passed", "timeout", "crashed", "failed", "error", "passed"]


def test_run_and_run_many_are_safe_from_several_threads(sb):
    def one(i: int) -> tuple[int, str]:
        code = f"def add(a, b):\n    return a + b + {i % 2}\n"
        return i, sb.run(code, HONEST_TESTS).status

    with ThreadPoolExecutor(max_workers=6) as pool:
        outcomes = list(pool.map(one, range(24)))
        many = pool.submit(sb.run_many, [Job(HONEST_CODE, HONEST_TESTS)] * 6)
        assert all(r.passed for r in many.result())
    assert all(status == ("passed" if i % 2 == 0 else "failed") for i, status in outcomes)


def test_a_killed_worker_yields_an_error_result_and_is_restarted():
    with quiet_sandbox(workers=1, limits=Limits(timeout_s=20)) as box:
        worker = box._workers[0]
        killer = threading.Timer(0.5, lambda: os.killpg(worker.proc.pid, signal.SIGKILL))
        killer.start()
        r = box.run("import time\ntime.sleep(15)\n", "assert True")
        killer.join()
        assert r.status == "error" and r.error_type == "SandboxError"
        assert sandbox_processes_after_exit(box.uids) == []
        assert box.run(HONEST_CODE, HONEST_TESTS).status == "passed"
        worker.stop()  # dead between jobs: the next job restarts it
        assert box.run(HONEST_CODE, HONEST_TESTS).status == "passed"


def test_run_many_resends_the_jobs_queued_behind_a_killed_worker():
    with quiet_sandbox(workers=1, limits=Limits(timeout_s=20)) as box:
        worker = box._workers[0]
        killer = threading.Timer(0.5, lambda: os.killpg(worker.proc.pid, signal.SIGKILL))
        killer.start()
        jobs = [Job("import time\ntime.sleep(15)\n", "assert True")] + [Job(HONEST_CODE, HONEST_TESTS)] * 3
        results = box.run_many(jobs)
        killer.join()
        # The next job was already queued on the dead server: it is sent again, not reported as an error.
        assert [r.status for r in results] == ["error", "passed", "passed", "passed"]
        assert results[0].error_type == "SandboxError"


def test_run_many_with_requests_and_results_larger_than_a_pipe_does_not_block():
    code = "def add(a, b):\n    return a + b\nprint('x' * 150000)\n"
    tests = "# " + "y" * 300000 + "\n" + HONEST_TESTS  # a request far over the 64 KiB a pipe holds
    with quiet_sandbox(workers=1, limits=Limits(timeout_s=10, output_bytes=200000)) as box:
        results = box.run_many([Job(code, tests)] * 3)
    assert [r.status for r in results] == ["passed"] * 3
    assert all(len(r.stdout) == 150001 for r in results)


def test_results_still_queued_when_a_caller_is_interrupted_never_reach_the_next_job():
    jobs = [Job(HONEST_CODE, HONEST_TESTS)] * 3
    todo: queue.SimpleQueue[int] = queue.SimpleQueue()
    for i in range(len(jobs)):
        todo.put(i)

    def interrupted(i: int, result: Result) -> None:
        raise KeyboardInterrupt  # arrives while the next job's result is still on its way

    with quiet_sandbox(workers=1) as box:
        with pytest.raises(KeyboardInterrupt):
            box._workers[0].run_stream(jobs, todo, FAST, interrupted)
        # Read in order, a leftover "passed" would become this wrong solution's result.
        assert box.run("def add(a, b):\n    return 0\n", HONEST_TESTS).status == "failed"


def test_subdirectories_and_links_in_the_run_dir_do_not_reach_the_next_job():
    make = "import os\nos.makedirs('sub/deeper')\nopen('sub/deeper/f', 'w').write('x')\nos.symlink('/etc', 'link')\n"
    look = "import os\nprint(sorted(os.listdir('.')))\n"
    with quiet_sandbox(workers=1) as box:
        assert box.run(make, "assert True").status == "passed"
        r = box.run(look, "assert True")
    assert r.stdout.strip() == "['solution.py']"  # judged: the tests never touch the solution's filesystem
    assert os.path.isdir("/etc")


def test_each_job_draws_its_own_random_numbers(sb):
    draws = {sb.run("import random\nprint(random.random())\n", "assert True").stdout for _ in range(3)}
    assert len(draws) == 3  # forks of one server must not replay the same random sequence


def test_no_process_outlives_its_job(sb):
    code = "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(60)\n"
    assert sb.run(code, "assert True").status == "passed"
    assert sandbox_processes(sb.uids) == []


def test_tamper_watch_sees_a_replaced_added_or_restored_name():
    namespace = {"all": all, "any": any}
    watch = runner.Watched("ns", namespace, strict=False)
    table = runner.VersionTable([namespace])
    assert table.usable and table.changed() == [] and watch.change() is None
    namespace["all"] = lambda items: True
    assert table.changed() == [0] and watch.change() == "ns.all was replaced"
    namespace["all"] = all
    assert (
        watch.change() is None
    )  # a patch that was undone (mock.patch in a test) is not tampering by content,
    assert table.changed() == [0]  # but the write is seen: where nothing may ever be written, it is tampering
    namespace["extra"] = 1
    assert watch.change() == "ns.extra was added"


def _records(*records: list, nonce: bytes | None = b"abc") -> bytes:
    data = b"".join(b"R%08d" % len(json.dumps(r)) + json.dumps(r).encode() for r in records)
    return data + (b"E" + nonce if nonce is not None else b"")


def test_in_process_records_need_the_nonce_and_keep_the_first_outcome():
    common = dict(report_overflow=False, nonce_hash=hashlib.sha256(b"abc").hexdigest(), exit_status=0,
                  expected={"statements": 1}, style="script", module_name="solution", kill_reason=None,
                  memory_killed=False, coverage=False)  # fmt: skip
    good = _records(["o", "0", "ok"], ["a", 1])
    assert decide_in_process(records=good, **common)["status"] == "passed"
    assert (
        decide_in_process(records=_records(["o", "0", "ok"], ["a", 1], nonce=b"xyz"), **common)["status"]
        == "tampering"
    )
    assert (
        decide_in_process(records=_records(["o", "0", "ok"], ["a", 1], nonce=None), **common)["status"]
        == "error"
    )
    flipped = _records(["o", "0", "ok"], ["o", "0", "failed"], ["a", 1])
    assert decide_in_process(records=flipped, **common)["status"] == "tampering"
    assert decide_in_process(records=b"garbage" + good, **common)["status"] == "tampering"
    assert (
        decide_in_process(records=_records(["a", 1]), **common)["status"] == "error"
    )  # the statement never ran
    report, ended, forged = parse_records(
        _records(["o", "0", "failed"], ["o", "0", "failed"]), hashlib.sha256(b"abc").hexdigest()
    )
    assert ended and forged is None and report["outcomes"]["0"]["outcome"] == "failed"


@pytest.mark.skipif(shutil.which("bwrap") is None or os.geteuid() != 0, reason="needs root and bubblewrap")
def test_full_isolation_is_reported_with_bwrap(sb):
    r = sb.run(HONEST_CODE, HONEST_TESTS)
    assert set(sandbox_pool.PROTECTIONS) <= set(r.protections)
    assert sb.missing_protections() == []


@pytest.mark.skipif(os.geteuid() != 0, reason="the fallback isolates fully only as root")
def test_without_bwrap_the_root_is_read_only_too_and_nothing_is_missing():
    with quiet_sandbox(workers=1, use_bwrap=False) as box:
        r = box.run(HONEST_CODE, HONEST_TESTS)
        writes = [
            box.run(f"open({path!r}, 'w').write('x')\n", "assert True")
            for path in ("/etc/sandbox-test", "/run/lock/sandbox-test", "/var/lib/sandbox-test")
        ]
        home = box.run("import os\nprint(sorted(os.listdir(os.path.expanduser('~root'))))\n", "assert True")
    assert r.status == "passed" and set(sandbox_pool.PROTECTIONS) <= set(r.protections)
    assert [w.error_type for w in writes] == ["OSError"] * 3 and all("Read-only" in w.message for w in writes)
    assert ".bashrc" not in home.stdout and ".profile" not in home.stdout
    assert not os.path.exists("/run/lock/sandbox-test")


def test_missing_protections_are_one_line_on_stderr_once_per_process(monkeypatch, capsys):
    monkeypatch.setattr(sandbox_pool, "_noticed", False)
    monkeypatch.setattr(
        sandbox_pool.Sandbox, "missing_protections", lambda self: ["readonly_root", "memory_cgroup"]
    )
    for _ in range(2):
        with Sandbox(workers=1, limits=FAST):
            pass
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(
        "sandbox: reduced isolation, missing readonly_root, memory_cgroup ("
    )
    assert "Warning" not in err and ".py" not in err  # no warning category, no source path
    with Sandbox(workers=1, limits=FAST, notice=False):
        pass
    assert capsys.readouterr().err == ""


def test_the_notice_hint_fits_the_user(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert "run as root" not in sandbox_pool.why_missing("net_namespace")
    assert "run as root" not in sandbox_pool.why_missing("unprivileged_uid")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert "run as root" in sandbox_pool.why_missing("net_namespace")
    assert "run as root" in sandbox_pool.why_missing("unprivileged_uid")


def test_closed_sandbox_refuses_jobs():
    box = Sandbox(workers=1, limits=FAST, notice=False)
    box.close()
    with pytest.raises(RuntimeError, match="closed"):
        box.run(HONEST_CODE, HONEST_TESTS)


def test_cli_run_prints_one_json_object(tmp_path):
    (tmp_path / "code.py").write_text(HONEST_CODE)
    (tmp_path / "tests.py").write_text(HONEST_TESTS)
    cmd = [
        sys.executable,
        "-m",
        "sandbox",
        "run",
        str(tmp_path / "code.py"),
        str(tmp_path / "tests.py"),
        "--json",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "passed"


def test_cli_run_names_a_missing_file(tmp_path):
    cmd = [sys.executable, "-m", "sandbox", "run", str(tmp_path / "nope.py"), str(tmp_path / "t.py")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "nope.py" in done.stderr


def test_cli_check_lists_protections_and_probes():
    done = subprocess.run(
        [sys.executable, "-m", "sandbox", "check"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for name in ("net_namespace", "pid_namespace", "unprivileged_uid", "probe: network blocked"):
        assert name in done.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="the fallback isolates fully only as root")
def test_cli_check_without_bwrap_shows_the_fallback_keeps_every_protection():
    cmd = [sys.executable, "-m", "sandbox", "check", "--no-bwrap"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok      readonly_root" in done.stdout and "ok      memory_cgroup" in done.stdout
    assert "all protections active" in done.stdout


def test_concurrent_sandboxes_do_not_interfere():
    results = []

    def use() -> None:
        with quiet_sandbox(workers=1) as box:
            results.append(box.run(HONEST_CODE, HONEST_TESTS).status)

    threads = [threading.Thread(target=use) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == ["passed", "passed"]


@pytest.mark.skipif(os.geteuid() != 0, reason="the namespaces need root")
@pytest.mark.parametrize("use_bwrap", [True, False])
def test_a_python_install_under_tmp_is_shown_to_jobs_and_survives_the_wipe(tmp_path, use_bwrap):
    # Each worker's /tmp is a private tmpfs: a virtual environment living under /tmp (CI clones, throwaway venvs)
    # must be shown again read-only, or the fork server cannot even start.
    if use_bwrap and shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed")
    venv = tmp_path / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(venv)], check=True
    )
    probe = (
        "import json, sys\n"
        "from sandbox import Sandbox\n"
        f"with Sandbox(workers=1, use_bwrap={use_bwrap}) as sb:\n"
        "    first = sb.run('import sys\\nprint(sys.prefix)\\n', 'assert True\\n')\n"
        "    second = sb.run('x = 1\\n', 'assert x == 1\\n')\n"
        "    write = sb.run('open(sys.prefix + \"/evil\", \"w\")\\n', 'assert True\\n')\n"
        "print(json.dumps([first.status, first.stdout.strip(), second.status, write.status, sys.prefix]))\n"
    )
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-W", "ignore", "-c", probe],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    first, printed_prefix, second, write, prefix = json.loads(out.stdout.strip().splitlines()[-1])
    assert first == second == "passed"
    assert printed_prefix == prefix == str(venv)
    assert write == "error"  # shown read-only
    assert not (venv / "evil").exists()


def test_remove_tree_survives_depth_width_and_links_and_follows_none(tmp_path):
    from sandbox.scratch import remove_tree

    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else str(tmp_path)
    root = os.path.join(base, f"sandbox-remove-{os.getpid()}")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    os.mkdir(root)
    fd = os.open(root, os.O_RDONLY)
    try:
        for i in range(200):
            open(os.path.join(root, f"f{i}"), "w").close()
        os.symlink(str(outside), os.path.join(root, "link"))
        current = os.dup(fd)
        for _ in range(1500):  # deeper than Python's recursion limit and than PATH_MAX allows as a path
            os.mkdir("d", dir_fd=current)
            os.symlink(str(outside), "to-outside", dir_fd=current)
            deeper = os.open("d", os.O_RDONLY, dir_fd=current)
            os.close(current)
            current = deeper
        os.close(current)
        parent = os.open(base, os.O_RDONLY)
        try:
            remove_tree(parent, os.path.basename(root))
        finally:
            os.close(parent)
    finally:
        os.close(fd)
    assert not os.path.exists(root)
    assert (outside / "keep.txt").read_text() == "keep"  # links were removed, never followed


def test_check_says_why_no_memory_cgroup_is_usable(monkeypatch):
    from sandbox import cgroup

    monkeypatch.setattr(cgroup, "own_path", lambda: None)
    assert "no cgroup v1 memory controller" in sandbox_pool.why_missing("memory_cgroup")
    assert cgroup.create("sandbox-never") is None


@pytest.mark.skipif(os.geteuid() != 0, reason="memory cgroups need root")
def test_a_closed_sandbox_leaves_no_memory_cgroup_behind():
    from sandbox import cgroup

    parent = cgroup.own_path()
    if parent is None:
        pytest.skip("no cgroup v1 memory controller")
    with quiet_sandbox(workers=2) as box:
        assert box.run(HONEST_CODE, HONEST_TESTS).status == "passed"
        names = [f"{cgroup.PREFIX}{uid}" for uid in box.uids]
        assert all(os.path.isdir(os.path.join(parent, n)) for n in names)
    assert not any(os.path.exists(os.path.join(parent, n)) for n in names)
