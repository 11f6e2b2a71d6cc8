"""`focal-dpo` console script: `train` (registered with its options in `focal_dpo.config`) and `eval`."""

from __future__ import annotations

import sys

from codeflow.cli import build_parser, run

SUBCOMMAND_MODULES = ["focal_dpo.config", "focal_dpo.eval"]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser("focal-dpo", SUBCOMMAND_MODULES, "Train and evaluate code models with focal DPO.")
    return run(parser, argv)


if __name__ == "__main__":
    sys.exit(main())
