"""`codeflow` console script. Each subcommand lives beside the code it drives and registers itself here."""

from __future__ import annotations

import argparse
import importlib
import sys

# Modules that define `register(subparsers)`; each adds its subcommands and sets `func` on them.
SUBCOMMAND_MODULES = ["codeflow.diff.cli", "codeflow.pipeline.cli"]


def build_parser(prog: str, modules: list[str], description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in modules:
        importlib.import_module(name).register(subparsers)
    return parser


def run(parser: argparse.ArgumentParser, argv: list[str] | None) -> int:
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    return int(args.func(args) or 0)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser("codeflow", SUBCOMMAND_MODULES, "Build code preference data from bug fixes.")
    return run(parser, argv)


if __name__ == "__main__":
    sys.exit(main())
