"""`focal-dpo` console script: `train` (its options in `focal_dpo.config`), `tiny-model`, `plot` and `eval`.

Building the command line imports no torch: each command imports what it needs when it runs.
"""

from __future__ import annotations

import sys

from codeflow.cli import build_parser

SUBCOMMAND_MODULES = ["focal_dpo.config", "focal_dpo.tiny", "focal_dpo.plot", "focal_dpo.eval"]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser("focal-dpo", SUBCOMMAND_MODULES, "Train and evaluate code models with focal DPO.")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    args.argv = argv  # the command as given, so an interrupted run can print the command that resumes it
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
