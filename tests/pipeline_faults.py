"""Test-only fault injection for `codeflow build`, kept out of the shipped code: run the CLI in this process with
the run database and the model calls patched.

    python -m tests.pipeline_faults --kill-after-commits 5 --request-log FILE -- build problems.jsonl --out run

`--kill-after-commits N` SIGKILLs the process right after the run database's N-th commit (to prove that
resumption survives kill -9); `--request-log FILE` appends the hash of every request just before it is sent.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys


def install(kill_after_commits: int | None, request_log: str | None) -> None:
    from codeflow.pipeline.calls import ModelCalls
    from codeflow.pipeline.db import RunDB

    if kill_after_commits:
        commit = RunDB._commit
        commits = 0

        def killing_commit(self, statements):
            nonlocal commits
            commit(self, statements)
            commits += 1
            if commits >= kill_after_commits:
                os.kill(os.getpid(), signal.SIGKILL)

        RunDB._commit = killing_commit
    if request_log:
        init = ModelCalls.__init__

        def logging_init(self, db, backend, engines):
            init(self, db, backend, engines)
            answer = backend.answer

            async def logged(req):
                with open(request_log, "a", encoding="utf-8") as f:
                    f.write(req.request_hash + "\n")
                return await answer(req)

            backend.answer = logged

        ModelCalls.__init__ = logging_init


def main() -> int:
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    parser = argparse.ArgumentParser(prog="python -m tests.pipeline_faults")
    parser.add_argument("--kill-after-commits", type=int)
    parser.add_argument("--request-log")
    args = parser.parse_args(argv[:split])
    install(args.kill_after_commits, args.request_log)
    from codeflow.cli import main as codeflow_main

    return codeflow_main(argv[split + 1 :])


if __name__ == "__main__":
    sys.exit(main())
